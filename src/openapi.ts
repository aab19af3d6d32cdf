import { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type { ParameterObject, SchemaObject } from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';
import { BEARER_SCHEME, ON_BEHALF_OF_SCHEME } from './auth/auth.decorators';
import { collapseAnyMethodOperations } from './common/any-method';
import { addSdkRetries } from './common/sdk-extensions';
import { operationId } from './common/sdk-namespace';

const DESCRIPTION = `Usage metering and spend budgets for an LLM API gateway, compatible with the MKA1 \`llm.usage\` and \`llm.budgets\` APIs.

Authenticate with \`Authorization: Bearer <api-key>\`. Multi-user server-side integrations may also send \`X-On-Behalf-Of: <external-user-id>\`: reads then see only that user's records, and writes record the user in their audit fields.

Every error has the shape \`{"error": {"message", "type", "code", "param"}}\` (validation errors add \`details\`, one entry per bad field), and every response carries \`X-Request-ID\`. Exact money amounts are integer nano-units (1e9 per major unit) sent as strings; the \`cost\` numbers beside them are for display.`;

/** Every tag an operation uses, in the order Swagger UI shows them. */
export const TAGS: Array<[name: string, description: string]> = [
  ['orgs', 'Tenants. Cluster admins create and list them; every key reads its own org.'],
  ['auth', 'API keys: one role each (`cluster_admin`, `org_admin`, `member`, `ingest`); the secret is shown once, at creation.'],
  ['usage', 'Completion records from the gateway, and the usage and cost reports over them.'],
  ['prices', 'The price book: per-model prices, in force from a time, that price records at ingest.'],
  ['budgets', "Spend budgets per org or API key, their live spend, and the gateway's enforcement check."],
  ['openai-compatible', "OpenAI's organization Usage and Costs API paths: point an OpenAI client's base URL at `/v1`."],
  ['health', 'Liveness and readiness probes (no API key).'],
];

export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Tally')
    .setDescription(DESCRIPTION)
    .setVersion('1.0.0')
    // Relative: Swagger UI and generated clients call the host that served the document.
    .addServer('/', 'The Tally instance serving this document')
    .addBearerAuth(
      { type: 'http', scheme: 'bearer', bearerFormat: 'API key', description: 'An API key: `Authorization: Bearer mk-…` (`mk-` and at least 32 letters and digits)' },
      BEARER_SCHEME,
    )
    .addApiKey(
      {
        type: 'apiKey',
        in: 'header',
        name: 'X-On-Behalf-Of',
        description:
          'Optional, with the bearer key: the external end user a multi-user server-side integration acts for (1-150 printable ASCII characters, not `*`)',
      },
      ON_BEHALF_OF_SCHEME,
    )
    .build();
  // The package is UNLICENSED (proprietary): there is no license document to link to.
  config.info.license = { name: 'Proprietary' };
  config.tags = TAGS.map(([name, description]) => ({ name, description }));
  const document = SwaggerModule.createDocument(app, config, {
    operationIdFactory: operationId,
  });
  return addInt64Formats(addSdkRetries(collapseAnyMethodOperations(document)));
}

const INT32_MAX = 2 ** 31 - 1;

/**
 * `format: int64` on every integer that may not fit 32 bits (no maximum, or one above 2^31 − 1:
 * Unix times, token counts, sums): generators that map a bare `integer` to int32 (openapi-generator
 * for Java, Go, C#) would overflow on them.
 */
function addInt64Formats<T>(node: T): T {
  if (Array.isArray(node)) node.forEach(addInt64Formats);
  else if (node !== null && typeof node === 'object') {
    const schema = node as Record<string, unknown>;
    if (schema.type === 'integer' && schema.format === undefined && !(typeof schema.maximum === 'number' && schema.maximum <= INT32_MAX && typeof schema.minimum === 'number' && schema.minimum >= -INT32_MAX - 1)) {
      schema.format = 'int64';
    }
    Object.values(schema).forEach(addInt64Formats);
  }
  return node;
}

/** Stable YAML: keys sorted at every level, so the checked-in file only changes when the API does. */
export function toStableYaml(document: OpenAPIObject): string {
  // Required here, not at the top: only the CLI writes YAML, and an API process need not hold js-yaml.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { dump } = require('js-yaml') as typeof import('js-yaml');
  return dump(JSON.parse(JSON.stringify(document)), { sortKeys: true, lineWidth: 120, noRefs: true });
}

/**
 * Swagger UI at /docs (showing {@link swaggerUiDocument}); the document itself at /docs-json and
 * /docs-yaml. Both are built on the first request for them: an API process that never serves its
 * docs keeps neither (~3 MB of live heap, which the old generation's limit multiplies, and ~35 MB
 * of heap the build committed at start-up). The price is ~0.3 s of synchronous work on the
 * first docs request of each process (a build that throws is retried by the next request). `npm
 * run openapi:check` builds the same document in CI, so a bad decorator still fails there.
 */
export function mountSwaggerUi(app: INestApplication): void {
  let document: OpenAPIObject | undefined;
  const built = (): OpenAPIObject => (document ??= buildOpenApiDocument(app));
  SwaggerModule.setup('docs', app, () => swaggerUiDocument(built()), {
    raw: false,
    customSiteTitle: 'Tally API',
    swaggerOptions: { persistAuthorization: true, displayRequestDuration: true },
  });
  SwaggerModule.setup('docs', app, built, { ui: false, jsonDocumentUrl: 'docs-json', yamlDocumentUrl: 'docs-yaml' });
}

/**
 * The document as Swagger UI shows it. "Try it out" fills every parameter with its example, so the
 * examples of optional parameters (a user filter, a page cursor, an org, X-On-Behalf-Of) would
 * narrow or break the first call; for Swagger UI they move into the parameter's description, and
 * only required parameters (and defaults) are pre-filled.
 */
export function swaggerUiDocument(document: OpenAPIObject): OpenAPIObject {
  const copy = JSON.parse(JSON.stringify(document)) as OpenAPIObject;
  for (const item of Object.values(copy.paths)) {
    for (const operation of Object.values(item as Record<string, { parameters?: ParameterObject[] }>)) {
      for (const parameter of operation.parameters ?? []) {
        const schema = parameter.schema as SchemaObject | undefined;
        if (parameter.required || schema?.example === undefined) continue;
        const example = Array.isArray(schema.example) ? schema.example.join(',') : String(schema.example);
        parameter.description = `${parameter.description ?? ''} Example: \`${example}\`.`.trim();
        delete schema.example;
      }
    }
  }
  return copy;
}
