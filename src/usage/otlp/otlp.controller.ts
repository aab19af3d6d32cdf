import { Controller, HttpCode, HttpStatus, Post, Req, Res } from '@nestjs/common';
import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Authenticated } from '../../auth/auth.decorators';
import { Role } from '../../auth/role';
import { ApiErrorResponse } from '../../common/api-responses';
import { Idempotent } from '../../common/sdk-extensions';
import { SdkNamespace } from '../../common/sdk-namespace';
import { decodeTraceRequest, encodeTraceResponse, OtlpEncoding } from './otlp-codec';
import { PROTOBUF } from './otlp-body';
import { OtlpIngestService } from './otlp-ingest.service';

const REQUEST_SCHEMA = {
  protobuf: {
    type: 'string',
    format: 'binary',
    description: 'An `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`, protobuf-encoded (optionally gzip, `Content-Encoding: gzip`)',
  },
  json: {
    type: 'object',
    additionalProperties: true,
    description:
      'An `ExportTraceServiceRequest` in OTLP/JSON (`resourceSpans[].scopeSpans[].spans[]`, ids in hex, 64-bit integers as strings or numbers, at most 64 levels deep; optionally gzip). ' +
      'Unknown fields are ignored, as OTLP requires of receivers.',
    example: {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'tally.api_key_id', value: { stringValue: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD' } }] },
          scopeSpans: [
            {
              spans: [
                {
                  traceId: '5b8efff798038103d269b633813fc60c',
                  spanId: 'eee19b7ec3c1b174',
                  name: 'chat gpt-4o-mini',
                  startTimeUnixNano: '1763316000000000000',
                  endTimeUnixNano: '1763316001250000000',
                  attributes: [
                    { key: 'gen_ai.response.id', value: { stringValue: 'chatcmpl-9x8Yq2LmQ4' } },
                    { key: 'gen_ai.response.model', value: { stringValue: 'gpt-4o-mini' } },
                    { key: 'gen_ai.usage.input_tokens', value: { intValue: '1200' } },
                    { key: 'gen_ai.usage.output_tokens', value: { intValue: '300' } },
                  ],
                },
              ],
            },
          ],
        },
      ],
    },
  },
} as const;

const RESPONSE_SCHEMA = {
  protobuf: { type: 'string', format: 'binary', description: 'An `ExportTraceServiceResponse`, protobuf-encoded (empty when every span was accepted)' },
  json: {
    type: 'object',
    description: 'An `ExportTraceServiceResponse` in OTLP/JSON: `{}` when every span was accepted',
    properties: {
      partialSuccess: {
        type: 'object',
        properties: {
          rejectedSpans: { type: 'integer', format: 'int64', description: 'Spans with GenAI usage that could not be stored', example: 1 },
          errorMessage: { type: 'string', description: 'Why, span by span (the first ten)', example: '1 span(s) with GenAI usage could not be stored: …' },
        },
      },
    },
    example: { partialSuccess: { rejectedSpans: 1, errorMessage: "1 span(s) with GenAI usage could not be stored: span 5b8e…/eee1…: api_key_id unknown API key 'key_nope'" } },
  },
} as const;

/** OTLP/HTTP traces as an ingest path (SPEC §7): an OpenTelemetry exporter needs only this URL and a key. */
@ApiTags('usage')
@SdkNamespace('llm.usage.otlp')
@Controller('api/v1/llm/usage/otlp')
export class OtlpController {
  constructor(private readonly otlp: OtlpIngestService) {}

  @Post('v1/traces')
  @Authenticated(Role.Ingest, Role.ClusterAdmin)
  @HttpCode(HttpStatus.OK)
  @ApiOperation({
    summary: 'Ingest OpenTelemetry GenAI spans (OTLP/HTTP)',
    description:
      'An OTLP/HTTP traces endpoint: point `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` at it. Each span with GenAI usage attributes ' +
      '(`gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `gen_ai.usage.cache_read.input_tokens`, or the older ' +
      '`gen_ai.usage.prompt_tokens` / `completion_tokens`) becomes one completion record: `id` from `gen_ai.response.id` (else trace ' +
      'id + span id), `model` from `gen_ai.response.model` (else `gen_ai.request.model`), `api_key_id` from the span or resource ' +
      'attribute `tally.api_key_id`, `user_id` from `user.id` / `enduser.id`, `created_at` from the span end; priced from the price ' +
      'book. Spans without usage are ignored; spans whose usage cannot be stored are counted in `partialSuccess.rejectedSpans`. ' +
      'Idempotent like every ingest. The answer is an `ExportTraceServiceResponse` in the request\'s encoding.',
    requestBody: {
      required: true,
      content: { [PROTOBUF]: { schema: REQUEST_SCHEMA.protobuf }, 'application/json': { schema: REQUEST_SCHEMA.json } },
    },
  })
  @ApiResponse({
    status: HttpStatus.OK,
    description: 'Stored (duplicates skipped); rejected spans, if any, in `partialSuccess`',
    content: { [PROTOBUF]: { schema: RESPONSE_SCHEMA.protobuf }, 'application/json': { schema: RESPONSE_SCHEMA.json } },
  })
  @Idempotent()
  @ApiErrorResponse(HttpStatus.BAD_REQUEST, 'The body is not an ExportTraceServiceRequest (malformed protobuf, JSON or gzip)')
  @ApiErrorResponse(HttpStatus.PAYLOAD_TOO_LARGE, 'The (decompressed) body is larger than the server accepts (`BODY_LIMIT_BYTES`)')
  @ApiErrorResponse(HttpStatus.UNSUPPORTED_MEDIA_TYPE, 'Not `application/x-protobuf` or `application/json`, or a `Content-Encoding` other than gzip')
  @ApiErrorResponse(HttpStatus.SERVICE_UNAVAILABLE, 'A dependency (database or Redis) is unavailable; retry after `Retry-After` seconds')
  async exportTraces(@Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply): Promise<Buffer | Record<string, unknown>> {
    const encoding: OtlpEncoding = Buffer.isBuffer(request.body) ? 'protobuf' : 'json';
    const result = await this.otlp.exportSpans(await decodeTraceRequest(request.body, encoding));
    reply.type(encoding === 'protobuf' ? PROTOBUF : 'application/json; charset=utf-8');
    return encodeTraceResponse(result, encoding);
  }
}
