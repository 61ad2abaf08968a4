/**
 * Route schemas of the v1 API and the OpenAPI 3.1 document generated from them (docs/api.md is
 * the prose version). Each route declares its `schema` once — params, querystring and JSON body,
 * which fastify validates, plus a summary and its responses for the document — and `collectRoutes`
 * turns the registered routes into the document, so what the document says is what the routes
 * check. Multipart fields come from the protect schema (src/protect/schema.ts), the one that
 * validates them.
 */
import type { FastifyInstance, FastifySchema } from 'fastify';
import { jsonSchemaOf, parametersFor } from '../protect/index.js';

/** A route schema with what only the document needs: the responses, and a multipart body (validated by the protect schema, not fastify). */
export interface RouteSchema extends FastifySchema {
  summary: string;
  security?: unknown[];
  'x-responses': Record<string, unknown>;
  'x-multipart'?: Record<string, unknown>;
}

/** Types a route's schema (fastify's own type does not know the document's keys). */
export const routeSchema = (s: RouteSchema): RouteSchema => s;

const JOB_ID = { type: 'string', pattern: '^[0-9a-f]{32}$' } as const;
const ERROR = { $ref: '#/components/schemas/Error' };
export const err = (description: string): Record<string, unknown> => ({
  description,
  content: { 'application/json': { schema: ERROR } },
});
export const record = {
  description: 'the job record',
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Job' } } },
};
export const png = { description: 'PNG', content: { 'image/png': {} } };

export const idParams = { type: 'object', required: ['id'], properties: { id: JOB_ID } } as const;
export const tokenQuery = {
  type: 'object',
  properties: {
    token: { type: 'string', maxLength: 128, description: "read token from the record's links (instead of a key)" },
  },
} as const;

/** The multipart body of POST /v1/immunizations: the image, a mask and the protect parameters the API offers. */
export function immunizationForm(): Record<string, unknown> {
  return {
    type: 'object',
    required: ['image'],
    additionalProperties: false,
    properties: {
      image: { type: 'string', format: 'binary' },
      mask: {
        type: 'string',
        format: 'binary',
        description: 'white where the perturbation may go; same size as the image',
      },
      ...Object.fromEntries(
        parametersFor('api').map((p) => [
          p.name,
          p.name === 'model' ? { ...jsonSchemaOf(p), description: 'a model id from /v1/config' } : jsonSchemaOf(p),
        ]),
      ),
    },
  };
}

interface CollectedRoute {
  method: string;
  url: string;
  schema: RouteSchema;
}

/** Records every route registered after this call that has a RouteSchema (call it before registering routes). */
export function collectRoutes(app: FastifyInstance): CollectedRoute[] {
  const routes: CollectedRoute[] = [];
  app.addHook('onRoute', (r) => {
    const schema = r.schema as RouteSchema | undefined;
    if (schema?.['x-responses'] === undefined) return;
    for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push({ method: m.toLowerCase(), url: r.url, schema });
  });
  return routes;
}

function parametersOf(s: RouteSchema): unknown[] {
  const out: unknown[] = [];
  for (const [where, schema] of [
    ['path', s.params],
    ['query', s.querystring],
  ] as const) {
    const obj = schema as { properties?: Record<string, Record<string, unknown>>; required?: string[] } | undefined;
    for (const [name, p] of Object.entries(obj?.properties ?? {})) {
      const { description, ...rest } = p;
      out.push({
        name,
        in: where,
        required: where === 'path' || (obj?.required ?? []).includes(name),
        schema: rest,
        ...(description === undefined ? {} : { description }),
      });
    }
  }
  return out;
}

export function openApiDocument(version: string, routes: readonly CollectedRoute[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.url.replace(/:(\w+)/g, '{$1}');
    const s = r.schema;
    const body =
      s['x-multipart'] !== undefined
        ? { required: true, content: { 'multipart/form-data': { schema: s['x-multipart'] } } }
        : s.body !== undefined
          ? { content: { 'application/json': { schema: s.body } } }
          : undefined;
    const params = parametersOf(s);
    (paths[path] ??= {})[r.method] = {
      summary: s.summary,
      ...(s.security === undefined ? {} : { security: s.security }),
      ...(params.length === 0 ? {} : { parameters: params }),
      ...(body === undefined ? {} : { requestBody: body }),
      responses: s['x-responses'],
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Immunize API',
      version,
      description: 'Immunize photos against AI editing (Salman et al. 2023). Contract: docs/api.md.',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }, { apiKey: [] }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: { code: { type: 'string' }, message: { type: 'string' }, field: { type: 'string' } },
            },
          },
        },
        Progress: {
          type: ['object', 'null'],
          properties: {
            step: { type: 'integer' },
            steps: { type: 'integer' },
            loss: { type: ['number', 'null'] },
            fraction: { type: 'number' },
            etaMs: { type: ['integer', 'null'] },
          },
        },
        Job: {
          type: 'object',
          required: ['id', 'kind', 'status', 'createdAt', 'links'],
          properties: {
            id: { type: 'string' },
            kind: { enum: ['immunization', 'check', 'edit'] },
            status: { enum: ['queued', 'running', 'completed', 'failed', 'canceled'] },
            createdAt: { type: 'string', format: 'date-time' },
            startedAt: { type: ['string', 'null'] },
            finishedAt: { type: ['string', 'null'] },
            expiresAt: { type: ['string', 'null'] },
            attempts: { type: 'integer' },
            queuePosition: { type: ['integer', 'null'] },
            options: { type: 'object' },
            input: { type: ['object', 'null'] },
            progress: { $ref: '#/components/schemas/Progress' },
            error: { type: ['object', 'null'] },
            result: { type: ['object', 'null'] },
            links: { type: 'object', additionalProperties: { type: 'string' } },
          },
        },
      },
    },
    paths,
  };
}
