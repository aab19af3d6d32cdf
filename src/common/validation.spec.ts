import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { flattenValidationErrors } from './validation';
import { BigIntField, DecimalField, EnumArrayQueryField, splitQueryArray, StringArrayQueryField } from './validation';

class ArraysDto {
  @StringArrayQueryField({ description: 'models', maxLength: 5, optional: true, maxItems: 3 })
  models?: string[];

  @EnumArrayQueryField(['model', 'user_id'] as const, { description: 'group', optional: true })
  group_by?: string[];
}

class NumbersDto {
  @DecimalField({ description: 'price', maxDecimals: 9, max: '1000000' })
  price: string;

  @BigIntField({ description: 'nano', max: (1n << 63n) - 1n, optional: true })
  nano?: number | string;
}

function check<T extends object>(cls: new () => T, plain: Record<string, unknown>) {
  const instance = plainToInstance(cls, plain);
  return { instance, problems: flattenValidationErrors(validateSync(instance, { whitelist: true, forbidNonWhitelisted: true })) };
}

describe('query-array normalisation', () => {
  it.each([
    ['a single value', 'a', ['a']],
    ['repeated keys', ['a', 'b'], ['a', 'b']],
    ['comma-separated values', 'a,b', ['a', 'b']],
    ['a mix of both', ['a,b', 'c'], ['a', 'b', 'c']],
    ['duplicates', ['a', 'a,b'], ['a', 'b']],
    ['empty values, kept for validation to name', 'a,,b', ['a', '', 'b']],
  ])('normalises %s', (_what, input, output) => {
    expect(splitQueryArray(input)).toEqual(output);
  });

  it.each([
    ['repeated keys, each value whole (it may hold a comma)', ['a,b', 'c'], ['a,b', 'c']],
    ['the bracket form of one value, whole', ['acme,v2'], ['acme,v2']],
    ['one plain value, split', 'a,b,a', ['a', 'b']],
  ])('free-text values (splitEach false): %s', (_what, input, output) => {
    expect(splitQueryArray(input, false)).toEqual(output);
  });

  it('leaves anything else for validation to reject', () => {
    expect(splitQueryArray(undefined)).toBeUndefined();
    expect(splitQueryArray({ x: 'a' })).toEqual({ x: 'a' });
    expect(splitQueryArray([{ x: 'a' }])).toEqual([{ x: 'a' }]);
  });

  it('validates each value of a string array field', () => {
    expect(check(ArraysDto, { models: 'a,b' }).instance.models).toEqual(['a', 'b']);
    expect(check(ArraysDto, { models: 'a,,b' }).problems).toEqual([{ param: 'models', message: 'must not contain empty values' }]);
    expect(check(ArraysDto, { models: 'toolong' }).problems[0].message).toContain('at most 5 characters');
    expect(check(ArraysDto, { models: 'a,b,c,d' }).problems[0].message).toContain('must contain no more than 3 elements');
    expect(check(ArraysDto, { models: { x: 'a' } }).problems[0].param).toBe('models');
  });

  it('validates each value of an enum array field', () => {
    expect(check(ArraysDto, { group_by: ['model', 'user_id,model'] }).instance.group_by).toEqual(['model', 'user_id']);
    expect(check(ArraysDto, { group_by: 'model,team' }).problems).toEqual([
      { param: 'group_by', message: 'each value must be one of: model, user_id' },
    ]);
  });
});

describe('DecimalField and BigIntField', () => {
  it('turns decimal strings and numbers into the canonical decimal string they denote', () => {
    expect(check(NumbersDto, { price: '2.50' }).instance.price).toBe('2.5');
    expect(check(NumbersDto, { price: 2.5 }).instance.price).toBe('2.5');
    expect(check(NumbersDto, { price: 1e-7 }).instance.price).toBe('0.0000001');
    expect(check(NumbersDto, { price: 1e-7 }).problems).toEqual([]);
  });

  it.each([['-1'], [-1], ['1.0000000001'], [1e-10], ['abc'], [true], ['1000000.000000001'], [2e6]])('rejects price %p', (price) => {
    expect(check(NumbersDto, { price }).problems.map((p) => p.param)).toEqual(['price']);
  });

  it.each([[0], [12], ['9223372036854775807'], ['0'], [2 ** 53]])('accepts nano %p', (nano) => {
    expect(check(NumbersDto, { price: '1', nano }).problems).toEqual([]);
    expect(check(NumbersDto, { price: '1', nano }).instance.nano).toBe(String(nano));
  });

  it.each([[-1], [1.5], [2 ** 64], ['9223372036854775808'], ['1e3'], ['-1'], ['']])('rejects nano %p', (nano) => {
    expect(check(NumbersDto, { price: '1', nano }).problems.map((p) => p.param)).toEqual(['nano']);
  });
});
