import { applyDecorators, ValidationError, ValidationPipe } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, ApiPropertyOptions } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayNotEmpty,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
  ValidateBy,
  ValidateIf,
  ValidationOptions,
} from 'class-validator';
import { AppException, FieldProblem } from './errors';
import { DecimalRefusal, DecimalRules, integerOfText, readExactDecimal } from './exact-decimal';
import { numberSource } from './exact-json';

/** Flattens class-validator's tree into one problem per bad field, with dotted/indexed paths. */
export function flattenValidationErrors(errors: ValidationError[], parent = ''): FieldProblem[] {
  const problems: FieldProblem[] = [];
  for (const error of errors) {
    const path = /^\d+$/.test(error.property)
      ? `${parent}[${error.property}]`
      : parent
        ? `${parent}.${error.property}`
        : error.property;
    const messages = Object.entries(error.constraints ?? {}).map(([name, message]) =>
      name === 'whitelistValidation' ? 'is not a known field' : message.replace(new RegExp(`^${escapeRegExp(error.property)} `), ''),
    );
    if (messages.length > 0) problems.push({ param: path, message: messages.join(', ') });
    if (error.children?.length) problems.push(...flattenValidationErrors(error.children, path));
  }
  return problems;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The global pipe: transform, strip nothing silently: unknown fields are a 400 naming each. */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    transform: true,
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    validationError: { target: false, value: false },
    exceptionFactory: (errors) => AppException.validation(flattenValidationErrors(errors)),
  });
}

interface FieldOptions {
  description: string;
  example?: unknown;
  optional?: boolean;
  nullable?: boolean;
}

function apiProperty(options: FieldOptions, schema: ApiPropertyOptions) {
  const merged = {
    description: options.description,
    example: options.example,
    nullable: options.nullable || undefined,
    ...schema,
  } as ApiPropertyOptions;
  return options.optional ? ApiPropertyOptional(merged) : ApiProperty(merged);
}

function presence(options: FieldOptions) {
  if (options.nullable) return [ValidateIf((_o, value) => value !== null && value !== undefined)];
  return options.optional ? [IsOptional()] : [];
}

/** Free text may hold any printable Unicode, but no NUL or other control characters (PostgreSQL refuses NUL). */
export const NO_CONTROL_CHARACTERS = /^[^\u0000-\u001f\u007f]*$/;

/**
 * A webhook secret that starts with `whsec_` is Standard Webhooks' form: non-empty, padded base64
 * after the prefix, as its libraries require to verify (an empty or malformed one would sign with
 * a key nobody can check, or with an empty key anyone can). Any other secret is used as UTF-8 bytes.
 */
export const WEBHOOK_SECRET_FORM = /^(?!whsec_)[\s\S]*$|^whsec_(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$/;

/** A string field: validator and OpenAPI schema from one declaration. */
export function StringField(options: FieldOptions & { minLength?: number; maxLength: number; pattern?: RegExp; patternMessage?: string }) {
  const minLength = options.minLength ?? 1;
  return applyDecorators(
    ...presence(options),
    IsString(),
    ...(minLength > 0 ? [IsNotEmpty(), MinLength(minLength)] : []),
    MaxLength(options.maxLength),
    ...(options.pattern
      ? [Matches(options.pattern, { message: options.patternMessage ?? `must match ${options.pattern}` })]
      : [Matches(NO_CONTROL_CHARACTERS, { message: 'must not contain control characters' })]),
    apiProperty(options, {
      type: String,
      minLength,
      maxLength: options.maxLength,
      pattern: options.pattern?.source,
    }),
  );
}

/**
 * An enum field given as a readonly list of values. `enumName` makes it a named schema (for
 * bodies); leave it out for query parameters: @nestjs/swagger drops the example and default of a
 * query parameter whose schema is a `$ref`.
 */
export function EnumField<T extends string>(values: readonly T[], options: FieldOptions & { enumName?: string; default?: T }) {
  return applyDecorators(
    ...presence(options),
    IsIn(values as T[], { message: `must be one of: ${values.join(', ')}` }),
    apiProperty(options, { enum: values as T[], enumName: options.enumName, default: options.default }),
  );
}

/** An integer field with bounds; query strings are converted (strictly: "12abc" stays invalid). */
export function IntField(options: FieldOptions & { min?: number; max?: number; default?: number; fromQuery?: boolean }) {
  return applyDecorators(
    ...presence(options),
    Transform(({ value, obj, key }) => (options.fromQuery ? toIntegerOrRaw(value) : exactIntegerOrRaw(value, numberSource(obj, key)))),
    IsInt(),
    ...(options.min !== undefined ? [Min(options.min)] : []),
    ...(options.max !== undefined ? [Max(options.max)] : []),
    apiProperty(options, {
      type: 'integer',
      minimum: options.min,
      maximum: options.max,
      default: options.default,
    }),
  );
}

/** A boolean field; query strings accept exactly `true` and `false`. */
export function BoolField(options: FieldOptions & { default?: boolean; fromQuery?: boolean }) {
  return applyDecorators(
    ...presence(options),
    ...(options.fromQuery ? [Transform(({ value }) => (value === 'true' ? true : value === 'false' ? false : value))] : []),
    IsBoolean(),
    apiProperty(options, { type: Boolean, default: options.default }),
  );
}

/**
 * A body integer, exactly: a number whose text the body parser kept (`1e3`, 17 digits) stays a
 * number only when that text is exactly a safe integer; otherwise the text is handed on, and
 * IsInt refuses it (`1.0000000000000001` is not the integer 1, `9007199254740993` not 2^53).
 */
export function exactIntegerOrRaw(value: unknown, source: string | undefined): unknown {
  if (typeof value !== 'number' || source === undefined) return value;
  const exact = integerOfText(source);
  const safe = exact !== null && exact <= BigInt(Number.MAX_SAFE_INTEGER) && exact >= -BigInt(Number.MAX_SAFE_INTEGER);
  return safe && Number(exact) === value ? value : source;
}

export function toIntegerOrRaw(value: unknown): unknown {
  if (typeof value === 'string' && /^-?\d{1,16}$/.test(value)) return Number(value);
  return value;
}

/**
 * Query-string arrays: repeated keys (`a=x&a=y`) and the bracket form (`a[]=x`, mapped by the qs
 * parser) arrive as arrays, a single value as a string, which is split on commas (`a=x,y`). Values
 * of repeated keys are split too with `splitEach` (enum values hold no comma); without it each is
 * taken whole, so a free-text value that holds a comma (a model `acme,v2`, an end user `smith,
 * john`) is sent as `a[]=acme,v2` or with the key repeated. Duplicates are dropped (first one
 * kept); empty values are kept so validation names them.
 */
export function splitQueryArray(value: unknown, splitEach = true): unknown {
  if (value === undefined || value === null) return value;
  const items = Array.isArray(value) ? value : [value];
  if (!items.every((item) => typeof item === 'string')) return value;
  const split = splitEach || !Array.isArray(value);
  return [...new Set(split ? (items as string[]).flatMap((item) => item.split(',')) : (items as string[]))];
}

interface ArrayFieldOptions extends FieldOptions {
  maxItems?: number;
}

function queryArray(options: ArrayFieldOptions, each: PropertyDecorator[], schema: ApiPropertyOptions, splitEach: boolean) {
  return applyDecorators(
    ...presence(options),
    Transform(({ value }) => splitQueryArray(value, splitEach)),
    IsArray(),
    ArrayNotEmpty(),
    ArrayMaxSize(options.maxItems ?? 100),
    ...each,
    apiProperty(options, { maxItems: options.maxItems ?? 100, ...schema } as ApiPropertyOptions),
  );
}

/** A query array of strings: repeated keys, `a[]=` and one comma-separated value all accepted. */
export function StringArrayQueryField(options: ArrayFieldOptions & { maxLength: number }) {
  return queryArray(
    options,
    [
      IsString({ each: true }),
      MinLength(1, { each: true, message: 'must not contain empty values' }),
      MaxLength(options.maxLength, { each: true, message: `each value must be at most ${options.maxLength} characters` }),
      Matches(NO_CONTROL_CHARACTERS, { each: true, message: 'values must not contain control characters' }),
    ],
    { type: 'array', items: { type: 'string', minLength: 1, maxLength: options.maxLength } } as ApiPropertyOptions,
    false,
  );
}

/**
 * A query array of enum values, accepted in the same three encodings. Its enum stays inline:
 * @nestjs/swagger drops the example and maxItems of a query parameter whose items are a `$ref`.
 */
export function EnumArrayQueryField<T extends string>(values: readonly T[], options: ArrayFieldOptions) {
  return queryArray(
    { ...options, maxItems: options.maxItems ?? values.length },
    [IsIn(values as T[], { each: true, message: `each value must be one of: ${values.join(', ')}` })],
    { enum: values as T[], isArray: true } as ApiPropertyOptions,
    true,
  );
}

/** A custom check as a class-validator decorator with its message. */
export function Check(name: string, isValid: (value: unknown, object: object) => boolean, message: string, options?: ValidationOptions) {
  return ValidateBy(
    { name, validator: { validate: (value, args) => isValid(value, args?.object ?? {}), defaultMessage: () => message } },
    options,
  );
}

/**
 * A number read exactly (SPEC §4 "Numbers are parsed exactly"): the JSON number's own text,
 * whatever its form (`1e3`, `1.5E2`, `0.1`), becomes the exact decimal it denotes, checked against
 * `rules`; with `strings`, a plain decimal string ("2.50") is accepted too. The DTO then holds the
 * canonical decimal string ("1000", "2.5"); anything not exactly representable under the rules
 * (`1.5e-10` with 9 decimals, `1e400`, `NaN`) is a 400 naming the field.
 */
export function ExactDecimalField(options: FieldOptions & DecimalRules & { strings?: boolean; integer?: boolean }) {
  const rules: DecimalRules = { maxDecimals: options.maxDecimals, max: options.max, min: options.min };
  const strings = options.strings ?? false;
  const what = options.integer ? 'integer' : 'number';
  const numberSchema = {
    type: options.integer ? 'integer' : 'number',
    ...(options.min === 'positive' ? { minimum: 0, exclusiveMinimum: true } : { minimum: 0 }),
    maximum: Number(options.max),
  };
  const pattern = options.maxDecimals > 0 ? `^\\d{1,20}(\\.\\d{1,${options.maxDecimals}})?$` : '^\\d{1,20}$';
  return applyDecorators(
    ...presence(options),
    Transform(({ value, obj, key }) =>
      value === null || value === undefined ? value : readExactDecimal(value, numberSource(obj, key), rules, { strings }),
    ),
    ValidateBy({
      name: 'exactDecimal',
      validator: {
        validate: (value) => typeof value === 'string',
        defaultMessage: (args) =>
          args?.value instanceof DecimalRefusal ? args.value.message : strings ? `must be a decimal ${what} (a JSON number or a decimal string)` : `must be a ${what}`,
      },
    }),
    apiProperty(options, (strings ? { oneOf: [{ type: 'string', pattern }, numberSchema] } : numberSchema) as ApiPropertyOptions),
  );
}

/**
 * A non-negative decimal in major units, given as a string ("2.50") or a JSON number (2.5, 2.5e0),
 * with at most `maxDecimals` decimals. The DTO holds the exact decimal string.
 */
export function DecimalField(options: FieldOptions & { maxDecimals: number; max: string }) {
  return ExactDecimalField({ ...options, min: 'nonNegative', strings: true });
}

/**
 * A non-negative integer that may exceed 2^53: a JSON integer in any form (`5250000`, `5.25e6`),
 * read exactly, or a string of decimal digits, up to `max`. The DTO holds the digits as a string;
 * read it with `BigInt(value)`.
 */
export function BigIntField(options: FieldOptions & { max: bigint }) {
  return ExactDecimalField({ ...options, maxDecimals: 0, max: options.max.toString(), min: 'nonNegative', strings: true, integer: true });
}
