import { AppException } from '../common/errors';
import { createValidationPipe } from '../common/validation';
import { IngestRecordsDto } from './dto/ingest.dto';
import { DecimalRefusal } from '../common/exact-decimal';
import { numberSource, parseKeepingNumbers } from '../common/exact-json';
import { parseCostNano, parseIngestBody } from './ingest-validator';

const OK = { id: 'chatcmpl-1', api_key_id: 'key_abc', model: 'm', input_tokens: 10, output_tokens: 2, created_at: 1704067200 };
const VALUES: unknown[] = [
  undefined, null, '', 'x', 'a b', 'key_ok', '*', '\u0001', 'x'.repeat(41), 'res_ok1', 'x'.repeat(151), 'x'.repeat(201), '123', '9223372036854775807',
  '9223372036854775808', '-5', '1.5', 0, 5, 11, -1, 1.5, 1e300, Number.MAX_SAFE_INTEGER + 2, 946684799, 1704067200, 4102444800,
  4102444800.5, true, false, [], {}, ['x'],
  // Number lexemes as a client may write them (the body parser keeps their text: common/exact-json.ts).
  '#1e3#', '#5.25e6#', '#1.5e0#', '#1.0#', '#9007199254740993#', '#12345678901234567890#', '#1e400#', '#-0#', '#1E2#',
];

/** The body as the HTTP layer parses it: `"#lexeme#"` strings become bare JSON numbers with that text. */
function parsed(body: unknown): unknown {
  return parseKeepingNumbers(JSON.stringify(body).replace(/"#([^"#]+)#"/g, '$1'));
}
const FIELDS = [...Object.keys(OK), 'org_id', 'input_cached_tokens', 'input_audio_tokens', 'output_audio_tokens', 'user_id', 'project_id', 'batch', 'service_tier', 'cost_nano', 'reservation_id'];

function rng(seed: number) {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

/** What the generic class-validator pipe says about a body: the problems, or 'ok'. */
async function viaClassValidator(body: unknown) {
  try {
    await createValidationPipe().transform(body, { type: 'body', metatype: IngestRecordsDto });
    return 'ok';
  } catch (err) {
    return (err as AppException).details;
  }
}

function viaParser(body: unknown) {
  try {
    parseIngestBody(body, 36_500);
    return 'ok';
  } catch (err) {
    return (err as AppException).details;
  }
}

describe('parseIngestBody', () => {
  it('names the same problems, in the same order and words, as the class-validator DTO (random bodies)', async () => {
    const rand = rng(13);
    const pick = <T>(list: T[]) => list[Math.floor(rand() * list.length)];
    for (let n = 0; n < 1500; n++) {
      const records: unknown[] = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => {
        if (rand() < 0.05) return pick(['x', 5, null, true]);
        const record: Record<string, unknown> = { ...OK };
        const changes = Math.floor(rand() * 4);
        for (let c = 0; c < changes; c++) record[pick(FIELDS)] = pick(VALUES);
        if (rand() < 0.1) record[pick(['surprise', 'extra_field'])] = 1;
        return record;
      });
      const body: Record<string, unknown> = { records };
      if (rand() < 0.03) body.records = pick(['x', 5, null, undefined, []]);
      if (rand() < 0.03) body.other = 1;
      const received = parsed(body);
      expect({ body, problems: viaParser(received) }).toEqual({ body, problems: await viaClassValidator(parsed(body)) });
    }
  });

  it('refuses what the generic pipe let through: array records and fields named like Object.prototype members', () => {
    expect(viaParser({ records: [[]] })).toEqual([{ param: 'records[0]', message: 'must be an object' }]);
    expect(viaParser({ records: [{ ...OK, constructor: 1 }] })).toEqual([{ param: 'records[0].constructor', message: 'is not a known field' }]);
  });

  it('takes the records as sent out of the body (the request keeps its body until it is answered)', () => {
    const records = [OK, { ...OK, id: 'b', cost_nano: '9223372036854775807', batch: null, user_id: null }];
    const body: { records?: unknown[] } = { records };
    expect(parseIngestBody(body, 36_500)).toBe(records);
    expect(body.records).toBeUndefined();
  });

  it('refuses records older than the retention, naming the setting', () => {
    const now = 1704067200 + 10 * 86400;
    expect(() => parseIngestBody({ records: [{ ...OK, created_at: now - 5 * 86400 }] }, 5, now)).not.toThrow();
    let details: unknown;
    try {
      parseIngestBody({ records: [{ ...OK, created_at: now }, { ...OK, created_at: now - 5 * 86400 - 1 }] }, 5, now);
    } catch (err) {
      details = (err as AppException).details;
    }
    expect(details).toEqual([{ param: 'records[1].created_at', message: 'is older than the record retention of 5 days (RECORDS_RETENTION_DAYS)' }]);
  });
});

describe('parseCostNano', () => {
  it('reads JSON integers in any form exactly, and digit strings up to 2^63 − 1; refuses the rest, saying why', () => {
    const read = (text: string) => {
      const record = parseKeepingNumbers(`{"cost_nano": ${text}}`) as Record<string, unknown>;
      const result = parseCostNano(record.cost_nano, numberSource(record, 'cost_nano'));
      return result instanceof DecimalRefusal ? result.message : result;
    };
    expect(read('0')).toBe(0n);
    expect(read('5.25e6')).toBe(5_250_000n);
    expect(read('9007199254740993')).toBe(9007199254740993n);
    expect(read('"9223372036854775807"')).toBe(9223372036854775807n);
    expect(read('"9223372036854775808"')).toBe('must not be greater than 9223372036854775807');
    expect(read('1.5')).toBe('must be an integer');
    expect(read('-1')).toBe('must not be negative');
    expect(read('"1.0x"')).toBe('must be a decimal number (a JSON number or a decimal string)');
    expect(read('true')).toBe('must be a decimal number (a JSON number or a decimal string)');
  });
});
