import type { DocumentBuilder } from '@nestjs/swagger';
import { API_KEY_SCHEME, BEARER_SCHEME } from './require-scopes.decorator';

/** The two ways to present a key, as OpenAPI security schemes (Swagger UI's "Authorize"). */
export function addAuthSchemes(builder: DocumentBuilder): DocumentBuilder {
  return builder
    .addBearerAuth(
      { type: 'http', scheme: 'bearer', description: 'An API key: `Authorization: Bearer <key>`.' },
      BEARER_SCHEME,
    )
    .addApiKey(
      { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'An API key.' },
      API_KEY_SCHEME,
    );
}
