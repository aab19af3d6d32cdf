import { ApiProperty } from '@nestjs/swagger';
import type { ObjectLiteral, SelectQueryBuilder } from 'typeorm';
import { AppException, ErrorCode } from './errors';
import { ID_PATTERN } from './ids';
import { IntField, StringField } from './validation';

export const LIST_DEFAULT_LIMIT = 100;
export const LIST_MAX_LIMIT = 1000;

/**
 * `limit` and `after` of the management lists (orgs, API keys, budgets): oldest first, a page at
 * a time; pass the previous page's `last_id` as `after` while `has_more` is true.
 */
export class ListPageQueryDto {
  @IntField({
    description: `Items per page, 1-${LIST_MAX_LIMIT}; default ${LIST_DEFAULT_LIMIT}`,
    min: 1,
    max: LIST_MAX_LIMIT,
    default: LIST_DEFAULT_LIMIT,
    optional: true,
    fromQuery: true,
    example: LIST_DEFAULT_LIMIT,
  })
  limit?: number;

  @StringField({
    description: 'Cursor: the `last_id` of the previous page (a 400 `invalid_cursor` if that item is gone or not visible)',
    maxLength: 40,
    pattern: ID_PATTERN,
    optional: true,
    example: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD',
  })
  after?: string;
}

/** The paging fields every management list carries next to `object` and `data`. */
export class ListPageDto {
  @ApiProperty({ description: 'Whether more items follow: pass `last_id` as `after` for the next page', example: false })
  has_more: boolean;

  @ApiProperty({ type: String, nullable: true, description: 'Id of the last item of this page (null when empty)', example: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD' })
  last_id: string | null;
}

export interface ListPage<T> {
  items: T[];
  has_more: boolean;
  last_id: string | null;
}

/**
 * One page of `qb` (already filtered to what the caller may see), oldest first by (created_at,
 * id), after the visible item `after`. Reads `limit + 1` rows to know whether more follow.
 */
export async function pageOf<T extends ObjectLiteral & { id: string }>(qb: SelectQueryBuilder<T>, query: ListPageQueryDto): Promise<ListPage<T>> {
  const alias = qb.alias;
  const limit = query.limit ?? LIST_DEFAULT_LIMIT;
  if (query.after !== undefined) {
    const visible = await qb.clone().andWhere(`${alias}.id = :pageAfter`, { pageAfter: query.after }).getExists();
    if (!visible) throw AppException.badRequest(ErrorCode.InvalidCursor, `after: no item '${query.after}' in this list`, 'after');
    // Compared in SQL: timestamptz keeps microseconds, a JS Date would not.
    const table = qb.expressionMap.mainAlias!.metadata.tableName;
    qb.andWhere(`(${alias}.created_at, ${alias}.id) > (SELECT c.created_at, c.id FROM ${table} c WHERE c.id = :pageAfter)`, { pageAfter: query.after });
  }
  const rows = await qb.orderBy(`${alias}.created_at`, 'ASC').addOrderBy(`${alias}.id`, 'ASC').limit(limit + 1).getMany();
  const items = rows.slice(0, limit);
  return { items, has_more: rows.length > limit, last_id: items.length > 0 ? items[items.length - 1].id : null };
}
