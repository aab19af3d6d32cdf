import type { Examples } from '../../common/api-responses';

/**
 * Bodies shown in the OpenAPI document. The usage page is the MKA1 seed's response
 * (usage-completions.txt) to the seed's request (grouped by model only, so user_id and api_key_id
 * are null), plus the two audio counters every result carries; the completions test checks that
 * the API answers exactly this.
 */
export const USAGE_PAGE_EXAMPLES: Examples = {
  oneDay: {
    summary: 'One day grouped by model (the MKA1 example)',
    value: {
      object: 'page',
      data: [
        {
          object: 'bucket',
          start_time: 1704067200,
          end_time: 1704153600,
          results: [
            {
              object: 'organization.usage.completions.result',
              input_tokens: 1200,
              output_tokens: 300,
              input_cached_tokens: 200,
              num_model_requests: 12,
              input_audio_tokens: 0,
              output_audio_tokens: 0,
              user_id: null,
              api_key_id: null,
              model: 'meetkai:functionary-urdu-mini-pak',
              batch: null,
              service_tier: null,
              project_id: null,
            },
          ],
        },
      ],
      has_more: false,
      next_page: null,
    },
  },
};

export const INGEST_REQUEST_EXAMPLES: Examples = {
  twoRecords: {
    summary: 'Two completions: one priced from the price book, one with its cost given',
    value: {
      records: [
        {
          id: 'chatcmpl-9x8Yq2LmQ4',
          api_key_id: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD',
          model: 'meetkai:functionary-urdu-mini-pak',
          input_tokens: 1200,
          output_tokens: 300,
          input_cached_tokens: 200,
          user_id: 'user_123',
          created_at: 1704067200,
        },
        {
          id: 'chatcmpl-9x8Yq2LmQ5',
          api_key_id: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD',
          model: 'meetkai:functionary-urdu-mini-pak',
          input_tokens: 800,
          output_tokens: 120,
          batch: true,
          cost_nano: '5250000',
          created_at: 1704067260,
        },
      ],
    },
  },
};

export const COSTS_REPORT_EXAMPLES: Examples = {
  byModel: {
    summary: 'One day by model, with an unpriced model',
    value: {
      object: 'llm.usage.costs',
      currency: 'usd',
      start_time: 1704067200,
      end_time: 1704153600,
      group_by: ['model'],
      data: [
        { model: 'meetkai:functionary-urdu-mini-pak', api_key_id: null, team_id: null, external_user_id: null, org_id: null, cost: 12.5, cost_nano: '12500000000' },
        { model: 'meetkai:unpriced-preview', api_key_id: null, team_id: null, external_user_id: null, org_id: null, cost: 0, cost_nano: '0' },
      ],
      has_more: false,
      next_page: null,
      total_cost: 12.5,
      total_cost_nano: '12500000000',
      unpriced_models: ['meetkai:unpriced-preview'],
    },
  },
};
