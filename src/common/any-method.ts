import type { OpenAPIObject } from '@nestjs/swagger';

/**
 * Marks an `@All` route whose OpenAPI operations are one and the same: @nestjs/swagger documents
 * it once per method (`…_get`, `…_post`, …); {@link collapseAnyMethodOperations} keeps the GET.
 */
export const ANY_METHOD_EXTENSION = 'x-tally-any-method';

const OTHER_METHODS = ['post', 'put', 'delete', 'patch', 'options', 'head', 'search', 'trace'];

export function collapseAnyMethodOperations(document: OpenAPIObject): OpenAPIObject {
  for (const item of Object.values(document.paths) as Array<Record<string, Record<string, unknown> | undefined>>) {
    const get = item.get;
    if (!get?.[ANY_METHOD_EXTENSION]) continue;
    for (const method of OTHER_METHODS) delete item[method];
    delete get[ANY_METHOD_EXTENSION];
    get.operationId = String(get.operationId).replace(/_get$/, '');
  }
  return document;
}
