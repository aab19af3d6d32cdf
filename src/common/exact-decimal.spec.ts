import { DecimalRefusal, DecimalRules, integerOfText, parseDecimalText, readExactDecimal } from './exact-decimal';

const LIMIT: DecimalRules = { maxDecimals: 9, max: '1000000000000000', min: 'positive' };
const PCT: DecimalRules = { maxDecimals: 6, max: '1000000000', min: 'positive' };
const COST: DecimalRules = { maxDecimals: 0, max: '9223372036854775807', min: 'nonNegative' };

/** Reads `text` as a JSON number's own text (what the body parser keeps). */
const read = (text: string, rules: DecimalRules, strings = false) => {
  const result = readExactDecimal(Number(text), text, rules, { strings });
  return result instanceof DecimalRefusal ? `refused: ${result.message}` : result;
};

describe('readExactDecimal', () => {
  it.each([
    ['1e3', '1000'],
    ['1.5E2', '150'],
    ['0.1', '0.1'],
    ['1E+15', '1000000000000000'],
    ['2500e-3', '2.5'],
    ['0.000000001', '0.000000001'],
    ['123456789012345.123456789', '123456789012345.123456789'],
    ['3281.350', '3281.35'],
    ['00.5e0', '0.5'],
  ])('limit %s is exactly %s', (text, expected) => {
    expect(read(text, LIMIT)).toBe(expected);
  });

  it.each([
    ['1e-10', 'refused: must have at most 9 decimals'],
    ['1.5e-10', 'refused: must have at most 9 decimals'],
    ['0.1000000000000000055511151231257827', 'refused: must have at most 9 decimals'],
    ['1e400', 'refused: must not be greater than 1000000000000000'],
    ['1e-400', 'refused: must have at most 9 decimals'],
    ['1e99999999999999999999', 'refused: must not be greater than 1000000000000000'],
    ['1000000000000000.000000001', 'refused: must not be greater than 1000000000000000'],
    ['0', 'refused: must be greater than 0'],
    ['-0.0e7', 'refused: must be greater than 0'],
    ['-1', 'refused: must be greater than 0'],
  ])('limit %s is %s', (text, expected) => {
    expect(read(text, LIMIT)).toBe(expected);
  });

  it.each([
    ['793338', '793338'],
    ['1e9', '1000000000'],
    ['999999999.999999', '999999999.999999'],
    ['8e1', '80'],
    ['1e-6', '0.000001'],
    ['1e-7', 'refused: must have at most 6 decimals'],
    ['1.5e-10', 'refused: must have at most 6 decimals'],
    ['1000000000.000001', 'refused: must not be greater than 1000000000'],
  ])('pct %s is %s', (text, expected) => {
    expect(read(text, PCT)).toBe(expected);
  });

  it.each([
    ['5.25e6', '5250000'],
    ['9.223372036854775807E18', '9223372036854775807'],
    ['9223372036854775808', 'refused: must not be greater than 9223372036854775807'],
    ['1e-3', 'refused: must be an integer'],
    ['0', '0'],
    ['-1', 'refused: must not be negative'],
  ])('cost_nano %s is %s', (text, expected) => {
    expect(read(text, COST)).toBe(expected);
  });

  it('reads a double without kept text from its shortest form (exact for plain numbers)', () => {
    expect(readExactDecimal(0.1, undefined, LIMIT, { strings: false })).toBe('0.1');
    expect(readExactDecimal(3281.35, undefined, LIMIT, { strings: false })).toBe('3281.35');
    expect(readExactDecimal(1e21, undefined, LIMIT, { strings: false })).toEqual(new DecimalRefusal('must not be greater than 1000000000000000'));
    expect(readExactDecimal(Infinity, undefined, LIMIT, { strings: false })).toEqual(new DecimalRefusal('must be a number'));
  });

  it('takes plain decimal strings only where strings are allowed', () => {
    expect(readExactDecimal('2.50', undefined, LIMIT, { strings: true })).toBe('2.5');
    expect(readExactDecimal('2.50', undefined, LIMIT, { strings: false })).toEqual(new DecimalRefusal('must be a number'));
    expect(readExactDecimal('-1', undefined, LIMIT, { strings: true })).toEqual(new DecimalRefusal('must be greater than 0'));
    for (const text of ['1e3', ' 1', '+1', '0x10', '', 'NaN', '1.', '.5']) {
      expect(readExactDecimal(text, undefined, LIMIT, { strings: true })).toBeInstanceOf(DecimalRefusal);
    }
    expect(readExactDecimal(true, undefined, LIMIT, { strings: true })).toBeInstanceOf(DecimalRefusal);
    expect(readExactDecimal({}, undefined, LIMIT, { strings: true })).toBeInstanceOf(DecimalRefusal);
  });

  it('refuses a coefficient of thousands of digits without big arithmetic', () => {
    expect(read('1'.repeat(5000), COST)).toBe('refused: must not be greater than 9223372036854775807');
    expect(read(`0.${'0'.repeat(5000)}1`, LIMIT)).toBe('refused: must have at most 9 decimals');
  });
});

describe('parseDecimalText and integerOfText', () => {
  it('normalises leading and trailing zeros', () => {
    expect(parseDecimalText('-00120.500e1')).toEqual({ negative: true, coefficient: '1205', exponent: 0 });
    expect(parseDecimalText('0.000')).toEqual({ negative: false, coefficient: '', exponent: 0 });
    expect(parseDecimalText('1x')).toBeNull();
  });

  it('gives the exact integer of a JSON number text', () => {
    expect(integerOfText('1e3')).toBe(1000n);
    expect(integerOfText('9007199254740993')).toBe(9007199254740993n);
    expect(integerOfText('-2.5e1')).toBe(-25n);
    expect(integerOfText('1.5')).toBeNull();
    expect(integerOfText('1e400')).toBeNull();
  });
});
