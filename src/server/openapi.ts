/** The OpenAPI 3.1 document of the v1 API (docs/api.md is the prose version). */
import { jsonSchemaOf, parametersFor } from '../protect/index.js';

const err = (description: string): Record<string, unknown> => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9a-f]{32}$' } };
const tokenParam = { name: 'token', in: 'query', required: false, schema: { type: 'string' }, description: 'read token from the record\'s links (instead of a key)' };
const record = { description: 'the job record', content: { 'application/json': { schema: { $ref: '#/components/schemas/Job' } } } };
const sse = { description: 'Server-sent events: status, progress, end', content: { 'text/event-stream': { schema: { type: 'string' } } } };

function jobPaths(prefix: string, kind: string): Record<string, unknown> {
  return {
    [`${prefix}/{id}`]: {
      get: { summary: `status, progress and result metadata of a ${kind}`, parameters: [idParam, tokenParam], responses: { 200: record, 401: err('no or wrong key'), 404: err('no such job for this key') } },
      delete: { summary: `cancel if needed and delete a ${kind}`, parameters: [idParam], responses: { 204: { description: 'deleted' }, 404: err('no such job') } },
    },
    [`${prefix}/{id}/events`]: { get: { summary: 'progress stream (SSE)', parameters: [idParam, tokenParam], responses: { 200: sse, 404: err('no such job') } } },
    [`${prefix}/{id}/cancel`]: { post: { summary: `cancel a queued or running ${kind}`, parameters: [idParam], responses: { 200: record, 409: err('already finished'), 404: err('no such job') } } },
  };
}

export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: { title: 'Immunize API', version, description: 'Immunize photos against AI editing (Salman et al. 2023). Contract: docs/api.md.' },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }, { apiKey: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } },
      schemas: {
        Error: { type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' }, field: { type: 'string' } } } } },
        Progress: { type: ['object', 'null'], properties: { step: { type: 'integer' }, steps: { type: 'integer' }, loss: { type: ['number', 'null'] }, fraction: { type: 'number' }, etaMs: { type: ['integer', 'null'] } } },
        Job: {
          type: 'object',
          required: ['id', 'kind', 'status', 'createdAt', 'links'],
          properties: {
            id: { type: 'string' }, kind: { enum: ['immunization', 'check', 'edit'] }, status: { enum: ['queued', 'running', 'completed', 'failed', 'canceled'] },
            createdAt: { type: 'string', format: 'date-time' }, startedAt: { type: ['string', 'null'] }, finishedAt: { type: ['string', 'null'] }, expiresAt: { type: ['string', 'null'] },
            attempts: { type: 'integer' }, queuePosition: { type: ['integer', 'null'] }, options: { type: 'object' }, input: { type: ['object', 'null'] },
            progress: { $ref: '#/components/schemas/Progress' }, error: { type: ['object', 'null'] }, result: { type: ['object', 'null'] }, links: { type: 'object', additionalProperties: { type: 'string' } },
          },
        },
      },
    },
    paths: {
      '/v1/config': { get: { summary: 'limits, models, presets, auth mode', security: [], responses: { 200: { description: 'configuration' } } } },
      '/v1/openapi.json': { get: { summary: 'this document', security: [], responses: { 200: { description: 'OpenAPI 3.1' } } } },
      '/v1/immunizations': {
        post: {
          summary: 'immunize a photo (options as immunize protect)',
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: {
                  type: 'object', required: ['image'],
                  additionalProperties: false,
                  // The protect parameters the API offers, from the one schema (src/protect/schema.ts).
                  properties: {
                    image: { type: 'string', format: 'binary' }, mask: { type: 'string', format: 'binary', description: 'white where the perturbation may go; same size as the image' },
                    ...Object.fromEntries(parametersFor('api').map((p) => [p.name, p.name === 'model' ? { ...jsonSchemaOf(p), description: 'a model id from /v1/config' } : jsonSchemaOf(p)])),
                  },
                },
              },
            },
          },
          responses: {
            202: record, 400: err('invalid option or missing image'), 401: err('no or wrong key'), 413: err('upload or image too large'), 415: err('not multipart'),
            422: err('not a decodable image, or mask size mismatch'), 429: err('rate limited'), 503: err('queue full or unavailable'),
          },
        },
        get: { summary: 'the key\'s immunizations, newest first', parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 } }, { name: 'status', in: 'query', schema: { type: 'string' } }], responses: { 200: { description: '{ items: Job[] }' } } },
      },
      ...jobPaths('/v1/immunizations', 'immunization'),
      '/v1/immunizations/{id}/result.png': { get: { summary: 'the immunized PNG', parameters: [idParam, tokenParam], responses: { 200: { description: 'PNG', content: { 'image/png': {} } }, 409: err('not completed') } } },
      '/v1/immunizations/{id}/sidecar.json': { get: { summary: 'the immunize protect sidecar', parameters: [idParam, tokenParam], responses: { 200: { description: 'sidecar JSON' }, 409: err('not completed') } } },
      '/v1/immunizations/{id}/checks': {
        post: {
          summary: 'purify the result and check how much protection remains',
          parameters: [idParam],
          requestBody: { content: { 'application/json': { schema: { type: 'object', properties: { purifications: { type: 'array', items: { type: 'string' }, maxItems: 16 } } } } } },
          responses: { 202: record, 400: err('invalid purification'), 409: err('immunization not completed'), 501: err('no model to check with') },
        },
      },
      ...jobPaths('/v1/checks', 'check'),
      '/v1/immunizations/{id}/edits': {
        post: {
          summary: 'test the protection: edit the original and the immunized photo with the same prompt and seed (GET /v1/config editing)',
          parameters: [idParam],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { type: 'object', required: ['prompt'], additionalProperties: false, properties: {
              prompt: { type: 'string', minLength: 1, maxLength: 500 }, negativePrompt: { type: 'string', maxLength: 500 }, seed: { type: 'integer', minimum: 0, maximum: 4294967295 },
              steps: { type: 'integer', minimum: 1 }, strength: { type: 'number', exclusiveMinimum: 0, maximum: 1 }, guidance: { type: 'number', minimum: 0, maximum: 30 }, mode: { enum: ['img2img', 'inpaint'] },
            } } } },
          },
          responses: { 202: record, 400: err('invalid field'), 404: err('no such immunization for this key'), 409: err('immunization not completed'), 501: err('no editing model, or Redis mode') },
        },
      },
      ...jobPaths('/v1/edits', 'edit'),
      '/v1/edits/{id}/original.png': { get: { summary: 'the edit of the original photo', parameters: [idParam, tokenParam], responses: { 200: { description: 'PNG', content: { 'image/png': {} } }, 409: err('not completed') } } },
      '/v1/edits/{id}/immunized.png': { get: { summary: 'the edit of the immunized photo', parameters: [idParam, tokenParam], responses: { 200: { description: 'PNG', content: { 'image/png': {} } }, 409: err('not completed') } } },
      '/healthz': { get: { summary: 'liveness', security: [], responses: { 200: { description: 'ok' } } } },
      '/readyz': { get: { summary: 'readiness', security: [], responses: { 200: { description: 'ready' }, 503: { description: 'not ready' } } } },
      '/metrics': { get: { summary: 'Prometheus metrics', security: [], responses: { 200: { description: 'text format 0.0.4' } } } },
    },
  };
}
