import { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { dump } from 'js-yaml';
import { BEARER_SCHEME, ON_BEHALF_OF_SCHEME } from './auth/auth.decorators';
import { operationId } from './common/sdk-namespace';

const DESCRIPTION = `Usage metering and spend budgets for an LLM API gateway, compatible with the MKA1 \`llm.usage\` and \`llm.budgets\` APIs.

Authenticate with \`Authorization: Bearer <api-key>\`. Multi-user server-side integrations may also send \`X-On-Behalf-Of: <external-user-id>\`.

Every error has the shape \`{"error": {"message", "type", "code", "param"}}\`, and every response carries \`X-Request-ID\`.`;

export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Tally')
    .setDescription(DESCRIPTION)
    .setVersion('1.0.0')
    .addBearerAuth(
      { type: 'http', scheme: 'bearer', bearerFormat: 'mk-…', description: 'API key: `Authorization: Bearer mk-…`' },
      BEARER_SCHEME,
    )
    .addApiKey(
      {
        type: 'apiKey',
        in: 'header',
        name: 'X-On-Behalf-Of',
        description: 'Optional external user id for multi-user server-side integrations',
      },
      ON_BEHALF_OF_SCHEME,
    )
    .build();
  return SwaggerModule.createDocument(app, config, {
    operationIdFactory: operationId,
  });
}

/** Stable YAML: keys sorted at every level, so the checked-in file only changes when the API does. */
export function toStableYaml(document: OpenAPIObject): string {
  return dump(JSON.parse(JSON.stringify(document)), { sortKeys: true, lineWidth: 120, noRefs: true });
}

export function mountSwaggerUi(app: INestApplication, document: OpenAPIObject): void {
  SwaggerModule.setup('docs', app, document, {
    jsonDocumentUrl: 'docs-json',
    yamlDocumentUrl: 'docs-yaml',
    customSiteTitle: 'Tally API',
    swaggerOptions: { persistAuthorization: true, displayRequestDuration: true },
  });
}
