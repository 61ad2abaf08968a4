/**
 * The HTTP API (docs/api.md is the contract): fastify, JSON errors with stable codes, API keys,
 * per-key rate limits, upload checks before anything is decoded, SSE progress, Prometheus metrics.
 * The API never computes: jobs go to a queue (embedded or Redis) and run in runner processes.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import Fastify, {
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import multipart from '@fastify/multipart';
import sharp from 'sharp';
import { DEFAULT_PRESET, PRESET_ALIASES, PRESETS } from '../attacks/presets.js';
import { gpuMemory } from './gpu.js';
import { probeImage, restrictDecodersToUploadFormats, sniffUploadFormat, type ImageProbe } from '../io/images.js';
import { MAX_CHECK_ROWS, defaultCheckSuite, parseCheckSuite } from '../robustness/check.js';
import { authenticate, RateLimiter, type ApiKey } from './auth.js';
import { editingInfo, editLinks, registerEditRoutes, type EditingConfig } from './edits.js';
import { Metrics } from './metrics.js';
import { describeModels, learnedShipped, type ModelEntry } from './models.js';
import {
  collectRoutes,
  routeSchema,
  err,
  idParams,
  immunizationForm,
  openApiDocument,
  png,
  record,
  tokenQuery,
  type RouteSchema,
} from './openapi.js';
import { registerWebPage } from './static-web.js';
import { HttpError, validateOptions } from './options.js';
import type { JobQueue } from './queue.js';
import { ID_RE, Storage, TERMINAL, newJobRecord, type JobKind, type JobProgress, type JobRecord } from './storage.js';

export interface ApiConfig {
  models: ModelEntry[];
  keys: ApiKey[];
  maxUploadBytes: number;
  maxPixels: number;
  maxSteps: number;
  rateCreate: number;
  rateRequests: number;
  maxQueue: number;
  retentionMs: number;
  corsOrigins: string[];
  version: string;
  /** A folder with the built web page (index.html), served at `/` by registerWebPage (docs/web.md); null: none. */
  webRoot?: string | null;
  /** Editing pipelines for "test the protection" (edits.ts, `--edit-model`); null or absent: none. */
  editing?: EditingConfig | null;
  /** fastify's logger (false in tests). */
  logger?: boolean;
}

const FORMAT_EXT: Record<string, string> = {
  jpeg: 'jpg',
  png: 'png',
  webp: 'webp',
  tiff: 'tif',
  gif: 'gif',
  avif: 'avif',
  heif: 'avif', // the only HEIF the API accepts (sniffUploadFormat)
};

interface Caller {
  owner: string;
  /** Came with a job's read token, not a key: GET of that job only. */
  tokenFor: string | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller;
  }
}

/**
 * On every answer: never sniffed into another type (a JSON error is not HTML); job data is private
 * and changes, so nothing is cached unless the route says otherwise (result PNGs, the web page).
 */
function answerHeaders(reply: FastifyReply): void {
  void reply.header('X-Content-Type-Options', 'nosniff');
  if (!reply.hasHeader('Cache-Control')) void reply.header('Cache-Control', 'no-store');
}

function sendError(reply: FastifyReply, e: HttpError): FastifyReply {
  answerHeaders(reply); // also for refusals made before routing, which skip the hooks
  if (e.retryAfter !== undefined) void reply.header('Retry-After', String(e.retryAfter));
  return reply
    .code(e.status)
    .type('application/json; charset=utf-8')
    .send({ error: { code: e.code, message: e.message, ...(e.field === undefined ? {} : { field: e.field }) } });
}

/** fastify's and @fastify/multipart's own errors, as our JSON errors. */
function mapError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  const err = e as { code?: string; statusCode?: number; message?: string };
  const code = err.code ?? '';
  if (code === 'FST_ERR_VALIDATION') return validationError(e as ValidationFailure);
  if (code === 'FST_REQ_FILE_TOO_LARGE')
    return new HttpError(
      413,
      'E_UPLOAD_TOO_LARGE',
      'an uploaded file is over the size limit (see GET /v1/config limits.maxUploadBytes)',
    );
  if (code === 'FST_PARTS_LIMIT' || code === 'FST_FILES_LIMIT' || code === 'FST_FIELDS_LIMIT')
    return new HttpError(
      413,
      'E_UPLOAD_TOO_LARGE',
      'too many parts in the request (at most the image, a mask and the option fields)',
    );
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new HttpError(413, 'E_UPLOAD_TOO_LARGE', 'the request body is too large');
  if (code === 'FST_INVALID_MULTIPART_CONTENT_TYPE' || code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return new HttpError(
      415,
      'E_UNSUPPORTED_MEDIA_TYPE',
      'expected multipart/form-data (for this endpoint) or application/json',
    );
  if (
    code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
    code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH' ||
    code.startsWith('FST_ERR_CTP') ||
    err.statusCode === 400
  )
    return new HttpError(400, 'E_BAD_REQUEST', `malformed request: ${(err.message ?? '').split('\n')[0]}`);
  if (err.statusCode === 413) return new HttpError(413, 'E_UPLOAD_TOO_LARGE', 'the request is too large');
  return new HttpError(500, 'E_INTERNAL', 'internal error');
}

/** fastify's refusals of a URL before any route runs; the message never quotes the URL. */
function routerError(e: { code?: string }): HttpError {
  if (e.code === 'FST_ERR_MAX_PARAM_LENGTH')
    return new HttpError(414, 'E_URI_TOO_LONG', 'the URL is too long (a job id is 32 lowercase hex characters)');
  return new HttpError(400, 'E_BAD_REQUEST', 'the URL is not valid (a malformed percent-escape or path)');
}

/**
 * Node's HTTP parser's refusals (headers over its limit, a request that is not HTTP) reach no
 * route and no reply object: answered on the socket, in the API's error shape, and closed.
 */
function answerClientError(e: Error & { code?: string }, socket: Duplex): void {
  if (e.code === 'ECONNRESET' || socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, h] =
    e.code === 'HPE_HEADER_OVERFLOW'
      ? [
          431,
          'Request Header Fields Too Large',
          new HttpError(431, 'E_HEADERS_TOO_LARGE', 'the request headers are too large'),
        ]
      : e.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', new HttpError(408, 'E_TIMEOUT', 'the request took too long to arrive')]
        : [400, 'Bad Request', new HttpError(400, 'E_BAD_REQUEST', 'malformed HTTP request')];
  const body = JSON.stringify({ error: { code: h.code, message: h.message } });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n` +
      `Connection: close\r\n\r\n${body}`,
  );
}

interface ValidationFailure {
  validation?: { instancePath: string; params: Record<string, unknown>; message?: string }[];
  validationContext?: string;
}

/** A route schema's refusal (fastify + ajv), in the API's error shape, naming the field. */
function validationError(e: ValidationFailure): HttpError {
  if (e.validationContext === 'params')
    return new HttpError(400, 'E_BAD_REQUEST', 'a job id is 32 lowercase hex characters', 'id');
  const first = e.validation?.[0];
  const extra = first?.params['additionalProperty'];
  const field = String(
    first?.params['missingProperty'] ?? extra ?? first?.instancePath.split('/')[1] ?? e.validationContext ?? 'body',
  ).slice(0, 40);
  const what =
    extra !== undefined
      ? 'unknown field'
      : first?.params['missingProperty'] !== undefined
        ? 'is required'
        : (first?.message ?? 'invalid');
  return new HttpError(400, 'E_VALIDATION', `${field}: ${what}`, field);
}

function imageError(part: 'image' | 'mask', e: unknown): HttpError {
  const m = (e as Error).message ?? '';
  return new HttpError(
    422,
    'E_IMAGE',
    `${part}: not a decodable image (${m
      .replace(/^[^:]*: /, '')
      .split('\n')[0]!
      .slice(0, 200)})`,
    part,
  );
}

/** The create request's multipart body: its option fields and files; a body that is not valid multipart is a 400. */
async function readForm(
  req: FastifyRequest,
): Promise<{ fields: Record<string, string>; files: Partial<Record<'image' | 'mask', Buffer>> }> {
  const fields: Record<string, string> = {};
  const files: Partial<Record<'image' | 'mask', Buffer>> = {};
  try {
    for await (const part of req.parts()) {
      if (part.type === 'file') {
        if (part.fieldname !== 'image' && part.fieldname !== 'mask') {
          part.file.resume();
          throw new HttpError(
            400,
            'E_VALIDATION',
            `unexpected file field '${part.fieldname.slice(0, 40)}' (expected image and optionally mask)`,
            part.fieldname.slice(0, 40),
          );
        }
        if (files[part.fieldname] !== undefined)
          throw new HttpError(400, 'E_VALIDATION', `${part.fieldname} given twice`, part.fieldname);
        files[part.fieldname] = await part.toBuffer();
      } else {
        if (part.fieldname in fields)
          throw new HttpError(
            400,
            'E_VALIDATION',
            `${part.fieldname.slice(0, 40)} given twice`,
            part.fieldname.slice(0, 40),
          );
        if (part.valueTruncated)
          throw new HttpError(
            400,
            'E_VALIDATION',
            `${part.fieldname.slice(0, 40)}: value too long`,
            part.fieldname.slice(0, 40),
          );
        fields[part.fieldname] = String(part.value);
      }
    }
  } catch (e) {
    // Our refusals and @fastify/multipart's limits (FST_*) keep their status; anything else thrown
    // while parsing (no boundary, a malformed part header, a body cut short) is the client's body.
    if (e instanceof HttpError || (e as { code?: string }).code?.startsWith('FST_')) throw e;
    throw new HttpError(
      400,
      'E_BAD_REQUEST',
      `malformed multipart/form-data body (${String((e as Error).message ?? e)
        .split('\n')[0]!
        .slice(0, 100)})`,
    );
  }
  return { fields, files };
}

export interface Api {
  app: FastifyInstance;
  metrics: Metrics;
}

export async function buildApi(storage: Storage, queue: JobQueue, cfg: ApiConfig): Promise<Api> {
  // This process decodes uploads: its libvips reads the accepted raster formats and nothing else.
  restrictDecodersToUploadFormats();
  // Route schemas validate as declared: no coercion ('7' is not a number) and nothing removed
  // silently (an unknown field is refused, not dropped).
  const app = Fastify({
    logger: cfg.logger ?? false,
    bodyLimit: 64 * 1024,
    trustProxy: false,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    // Refusals before routing (bad escapes, over-long ids) in the API's error shape, never echoing the URL.
    frameworkErrors: (e, _req, reply) => sendError(reply, routerError(e)),
    clientErrorHandler: answerClientError,
  });
  const routes = collectRoutes(app);
  // Read once: both look at the models' folders (their configs), which a request must not wait on.
  const modelInfo = describeModels(cfg.models);
  const editInfo = editingInfo(cfg.editing, queue.kind);
  const metrics = new Metrics();
  const requestLimiter = new RateLimiter(cfg.rateRequests);
  const createLimiter = new RateLimiter(cfg.rateCreate);
  let openDoc: Record<string, unknown> | null = null;
  const finishedSeen = new Set<string>();

  await app.register(multipart, {
    limits: {
      fileSize: cfg.maxUploadBytes,
      files: 2,
      fields: 20,
      parts: 24,
      fieldSize: 1024,
      fieldNameSize: 64,
      headerPairs: 200,
    },
  });

  // ---- metrics of jobs as they finish ----
  queue.events.on('status', (r) => {
    if (!TERMINAL.has(r.status) || finishedSeen.has(r.id)) return;
    if (finishedSeen.size > 100_000) finishedSeen.clear();
    finishedSeen.add(r.id);
    metrics.counter('immunize_jobs_finished_total', 'Jobs that reached a final status, seen by this API process', {
      kind: r.kind,
      status: r.status,
    });
    if (r.status === 'completed' && r.startedAt !== null && r.finishedAt !== null) {
      metrics.observe(
        'immunize_job_duration_seconds',
        'Run time of completed jobs (start to finish of the last attempt)',
        { kind: r.kind },
        (Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000,
      );
    }
  });

  // ---- errors ----
  app.setErrorHandler((e, _req, reply) => {
    const h = mapError(e);
    if (h.status >= 500) app.log.error(e);
    return sendError(reply, h);
  });
  app.setNotFoundHandler((_req, reply) =>
    sendError(reply, new HttpError(404, 'E_NOT_FOUND', 'no such endpoint (see GET /v1/openapi.json)')),
  );

  app.addHook('onSend', (_req, reply, payload, done) => {
    answerHeaders(reply);
    done(null, payload);
  });

  app.addHook('onResponse', (req, reply, done) => {
    metrics.counter('immunize_http_requests_total', 'HTTP requests by route and status', {
      route: req.routeOptions.url ?? 'unmatched',
      status: String(reply.statusCode),
    });
    done();
  });

  // ---- CORS: off unless origins are listed ----
  if (cfg.corsOrigins.length > 0) {
    app.addHook('onRequest', (req, reply, done) => {
      const origin = req.headers.origin;
      if (origin !== undefined && cfg.corsOrigins.includes(origin)) {
        void reply.header('Access-Control-Allow-Origin', origin).header('Vary', 'Origin');
        if (req.method === 'OPTIONS') {
          void reply
            .header('Access-Control-Allow-Methods', 'GET, POST, DELETE')
            .header('Access-Control-Allow-Headers', 'Authorization, X-API-Key, Content-Type')
            .header('Access-Control-Max-Age', '600')
            .code(204)
            .send();
          return;
        }
      }
      done();
    });
  }

  // ---- who is calling ----
  const identify = (req: FastifyRequest, opts: { id?: string; allowToken?: boolean } = {}): Caller => {
    const auth = req.headers.authorization;
    const xkey = req.headers['x-api-key'];
    // RFC 9110 §11.1: the scheme name is case-insensitive ('bearer' is Bearer).
    const bearer = auth === undefined ? undefined : /^bearer +(.+)$/i.exec(auth)?.[1]?.trim();
    const presented = typeof xkey === 'string' ? xkey : bearer;
    let caller: Caller | null = null;
    if (presented !== undefined && cfg.keys.length > 0) {
      const name = authenticate(cfg.keys, presented);
      if (name === null) throw new HttpError(401, 'E_UNAUTHORIZED', 'the API key is not valid');
      caller = { owner: name, tokenFor: null };
    } else if (cfg.keys.length === 0) {
      caller = { owner: 'anonymous', tokenFor: null };
    } else {
      const token = (req.query as Record<string, unknown> | undefined)?.['token'];
      if (
        opts.allowToken &&
        opts.id !== undefined &&
        typeof token === 'string' &&
        ID_RE.test(opts.id) &&
        storage.checkToken(opts.id, token)
      ) {
        const r = storage.read(opts.id);
        if (r !== null) caller = { owner: r.owner, tokenFor: opts.id };
      }
      if (caller === null)
        throw new HttpError(
          401,
          'E_UNAUTHORIZED',
          'missing API key: send Authorization: Bearer <key> or X-API-Key: <key>',
        );
    }
    const wait = requestLimiter.take(caller.tokenFor === null ? `key:${caller.owner}` : `token:${caller.tokenFor}`);
    if (wait > 0)
      throw new HttpError(
        429,
        'E_RATE_LIMITED',
        `rate limit of ${cfg.rateRequests} requests per minute reached; retry in ${wait} s`,
        undefined,
        wait,
      );
    req.caller = caller;
    return caller;
  };

  const checkId = (id: string): void => {
    if (!ID_RE.test(id)) throw new HttpError(400, 'E_BAD_REQUEST', 'a job id is 32 lowercase hex characters', 'id');
  };

  /** The caller's job of this kind, or 404 (also for another key's job: its existence is not revealed). */
  const ownJob = (caller: Caller, id: string, kind: JobKind): JobRecord => {
    checkId(id);
    const r = storage.read(id);
    if (
      r === null ||
      r.kind !== kind ||
      r.owner !== caller.owner ||
      (caller.tokenFor !== null && caller.tokenFor !== id)
    )
      throw new HttpError(404, 'E_NOT_FOUND', `no ${kind} ${id}`);
    if (r.expiresAt !== null && Date.parse(r.expiresAt) <= Date.now())
      throw new HttpError(404, 'E_NOT_FOUND', `no ${kind} ${id} (expired)`);
    return r;
  };

  const base = (r: JobRecord): string =>
    r.kind === 'check' ? `/v1/checks/${r.id}` : r.kind === 'edit' ? `/v1/edits/${r.id}` : `/v1/immunizations/${r.id}`;

  const publicRecord = (r: JobRecord): Record<string, unknown> => {
    const t = `?token=${storage.token(r.id)}`;
    const links: Record<string, string> = { self: `${base(r)}${t}`, events: `${base(r)}/events${t}` };
    if (r.kind === 'immunization') {
      links['result'] = `${base(r)}/result.png${t}`;
      links['sidecar'] = `${base(r)}/sidecar.json${t}`;
      links['checks'] = `${base(r)}/checks`;
    } else links['immunization'] = `/v1/immunizations/${r.parent}`;
    if (r.kind === 'edit') Object.assign(links, editLinks(base(r), t));
    return {
      id: r.id,
      kind: r.kind,
      status: r.status,
      createdAt: r.createdAt,
      startedAt: r.startedAt,
      finishedAt: r.finishedAt,
      expiresAt: r.expiresAt,
      attempts: r.attempts,
      queuePosition: r.status === 'queued' ? queue.position(r.id) : null,
      options: r.options,
      input:
        r.input === null
          ? null
          : {
              width: r.input.width,
              height: r.input.height,
              format: r.input.format,
              bytes: r.input.bytes,
              sha256: r.input.sha256,
            },
      ...(r.parent === null ? {} : { immunization: r.parent }),
      progress: r.progress,
      error: r.error,
      result: r.result,
      links,
    };
  };

  /** A queue call a request waits on: a queue that cannot be reached (Redis down) is a 503, not a 500. */
  const queueCall = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch {
      throw new HttpError(503, 'E_UNAVAILABLE', 'the job queue is not reachable; retry later', undefined, 5);
    }
  };

  const capacity = async (): Promise<void> => {
    const c = await queueCall(() => queue.counts());
    if (c.queued + c.running >= cfg.maxQueue)
      throw new HttpError(503, 'E_UNAVAILABLE', `the queue is full (${cfg.maxQueue} jobs); retry later`, undefined, 30);
  };

  const takeCreate = (caller: Caller): void => {
    const wait = createLimiter.take(`create:${caller.owner}`);
    if (wait > 0)
      throw new HttpError(
        429,
        'E_RATE_LIMITED',
        `rate limit of ${cfg.rateCreate} new jobs per minute reached; retry in ${wait} s`,
        undefined,
        wait,
      );
  };

  const accept = async (
    r: JobRecord,
    files: { name: string; data: Buffer }[],
    reply: FastifyReply,
  ): Promise<FastifyReply> => {
    storage.create(r, files);
    try {
      await queueCall(() => queue.enqueue(r.id));
    } catch (e) {
      storage.remove(r.id); // refused: nothing of it may run later
      throw e;
    }
    metrics.counter('immunize_jobs_created_total', 'Jobs accepted', { kind: r.kind });
    queue.events.emit('status', r);
    return reply.code(202).header('Location', base(r)).send(publicRecord(r));
  };

  // ---- health, metrics, docs ----
  const open = (summary: string, responses: Record<string, unknown>): { schema: RouteSchema } => ({
    schema: { summary, security: [], 'x-responses': responses },
  });
  const serviceRoutes: FastifyPluginAsync = async (app) => {
    app.get('/healthz', open('liveness', { 200: { description: 'ok' } }), () => ({ status: 'ok' }));
    app.get(
      '/readyz',
      open('readiness', { 200: { description: 'ready' }, 503: { description: 'not ready' } }),
      async (_req, reply) => {
        const storageOk = storage.writable();
        const queueOk = await queue.ready().catch(() => false);
        const ready = storageOk && queueOk;
        return reply.code(ready ? 200 : 503).send({ ready, queue: queue.kind, storage: storageOk });
      },
    );
    app.get(
      '/metrics',
      open('Prometheus metrics', { 200: { description: 'text format 0.0.4' } }),
      async (_req, reply) => {
        const c = await queue.counts().catch(() => null);
        const mem = process.memoryUsage();
        const gpus = await gpuMemory();
        const text = metrics.render([
          {
            name: 'immunize_gpu_memory_used_bytes',
            help: 'GPU memory in use (nvidia-smi; all processes on the GPU)',
            values: gpus.map((g) => [{ gpu: String(g.index) }, g.usedBytes]),
          },
          {
            name: 'immunize_gpu_memory_total_bytes',
            help: 'GPU memory in all (nvidia-smi)',
            values: gpus.map((g) => [{ gpu: String(g.index) }, g.totalBytes]),
          },
          {
            name: 'immunize_queue_depth',
            help: 'Jobs waiting and running',
            values:
              c === null
                ? []
                : [
                    [{ state: 'queued' }, c.queued],
                    [{ state: 'running' }, c.running],
                  ],
          },
          {
            name: 'immunize_process_resident_memory_bytes',
            help: 'Resident memory of this API process',
            values: [[{}, mem.rss]],
          },
          {
            name: 'immunize_process_heap_used_bytes',
            help: 'V8 heap in use in this API process',
            values: [[{}, mem.heapUsed]],
          },
        ]);
        return reply.type('text/plain; version=0.0.4; charset=utf-8').send(text);
      },
    );
    app.get(
      '/v1/openapi.json',
      open('this document', { 200: { description: 'OpenAPI 3.1' } }),
      () => (openDoc ??= openApiDocument(cfg.version, routes)),
    );
    app.get(
      '/v1/config',
      open('limits, models, presets, auth mode', { 200: { description: 'configuration' } }),
      () => ({
        version: cfg.version,
        auth: cfg.keys.length === 0 ? 'none' : 'api-key',
        limits: {
          maxUploadBytes: cfg.maxUploadBytes,
          maxPixels: cfg.maxPixels,
          maxSteps: cfg.maxSteps,
          rateCreatePerMinute: cfg.rateCreate,
          rateRequestsPerMinute: cfg.rateRequests,
          retentionMs: cfg.retentionMs,
        },
        // Only what this server can run: diffusion needs an inpainting pipeline among its models.
        methods: [
          'encoder',
          'noise',
          ...(modelInfo.some((m) => m.methods.includes('diffusion')) ? ['diffusion'] : []),
          ...(learnedShipped() ? ['learned'] : []),
        ],
        baselines: ['noise'],
        models: modelInfo,
        presets: Object.entries(PRESETS).map(([id, p]) => ({
          id,
          description: p.description,
          eps: p.options.eps,
          stepSize: p.options.stepSize,
          steps: p.options.steps,
          optimizer: p.options.optimizer ?? 'sign',
          schedule: p.options.schedule ?? 'constant',
          stop: p.stop,
          budget: p.budget,
          minSsim: p.minSsim,
        })),
        // Old preset names a create still accepts (deprecated): `default` is `strong`.
        presetAliases: PRESET_ALIASES,
        defaults: { method: 'encoder', preset: DEFAULT_PRESET, target: 'gray', seed: 0 },
        purifications: defaultCheckSuite(cfg.maxSteps),
        checkAvailable: true,
        editing: editInfo,
      }),
    );
  };

  const immunizationRoutes: FastifyPluginAsync = async (app) => {
    // ---- create ----
    app.post(
      '/v1/immunizations',
      {
        schema: routeSchema({
          summary: 'immunize a photo (the parameters of immunize protect that the API offers)',
          'x-multipart': immunizationForm(),
          'x-responses': {
            202: record,
            400: err('invalid option or missing image'),
            401: err('no or wrong key'),
            413: err('upload or image too large'),
            415: err('not multipart'),
            422: err('not a decodable image, or mask size mismatch'),
            429: err('rate limited'),
            503: err('queue full or unavailable'),
          },
        }),
      },
      async (req, reply) => {
        const caller = identify(req);
        if (!req.isMultipart())
          throw new HttpError(
            415,
            'E_UNSUPPORTED_MEDIA_TYPE',
            'send the image as multipart/form-data (fields: image, mask, and options)',
          );
        takeCreate(caller);
        const { fields, files } = await readForm(req);
        const image = files.image;
        if (image === undefined)
          throw new HttpError(
            400,
            'E_MISSING_FIELD',
            'no image: send the photo as the multipart file field "image"',
            'image',
          );
        const v = validateOptions(fields, {
          models: cfg.models,
          maxSteps: cfg.maxSteps,
          hasMask: files.mask !== undefined,
          methods: modelInfo,
        });
        await capacity();
        const probe = await checkImage('image', image);
        let maskProbe: ImageProbe | null = null;
        if (files.mask !== undefined) {
          maskProbe = await checkImage('mask', files.mask);
          if (maskProbe.width !== probe.width || maskProbe.height !== probe.height) {
            throw new HttpError(
              422,
              'E_IMAGE_SIZE',
              `the mask is ${maskProbe.width}×${maskProbe.height} but the image is ${probe.width}×${probe.height}; they must have the same size`,
              'mask',
            );
          }
        }
        const r = newJobRecord('immunization', caller.owner);
        const inputFile = `input.${FORMAT_EXT[probe.format] ?? 'img'}`;
        const maskFile = maskProbe === null ? null : `mask.${FORMAT_EXT[maskProbe.format] ?? 'img'}`;
        r.options = v.options;
        r.parameters = v.parameters;
        r.input = {
          width: probe.width,
          height: probe.height,
          format: probe.format,
          bytes: image.length,
          sha256: createHash('sha256').update(image).digest('hex'),
          file: inputFile,
          mask: maskFile,
        };
        const out = [{ name: inputFile, data: image }];
        if (maskFile !== null) out.push({ name: maskFile, data: files.mask! });
        return accept(r, out, reply);
      },
    );

    /** Header first (pixel count refused before any decoding), then a bounded decode to catch corrupt files. */
    async function checkImage(part: 'image' | 'mask', data: Buffer): Promise<ImageProbe> {
      if (data.length === 0) throw new HttpError(422, 'E_IMAGE', `${part}: the file is empty`, part);
      // Raster formats only, known by their first bytes: an SVG (or anything else libvips would
      // render with references to other files) is refused before any decoder sees it.
      const sniffed = sniffUploadFormat(data);
      if (sniffed === null)
        throw new HttpError(
          422,
          'E_IMAGE_FORMAT',
          `${part}: not a PNG, JPEG, WebP, TIFF, AVIF or GIF file (judged by its first bytes; SVG and other formats are not accepted)`,
          part,
        );
      let p: ImageProbe;
      try {
        p = await probeImage(data);
      } catch (e) {
        throw imageError(part, e);
      }
      if (p.format !== sniffed)
        throw new HttpError(
          422,
          'E_IMAGE_FORMAT',
          `${part}: the file starts as ${sniffed} but decodes as ${p.format.slice(0, 20)}; not accepted`,
          part,
        );
      if (p.width * p.height > cfg.maxPixels) {
        throw new HttpError(
          413,
          'E_IMAGE_TOO_LARGE',
          `${part}: ${p.width}×${p.height} = ${((p.width * p.height) / 1e6).toFixed(1)} MP is over the limit of ${(cfg.maxPixels / 1e6).toFixed(1)} MP`,
          part,
        );
      }
      try {
        await sharp(data, { limitInputPixels: cfg.maxPixels, failOn: 'error' }).raw().toBuffer();
      } catch (e) {
        throw imageError(part, e);
      }
      return p;
    }

    // ---- list ----
    app.get(
      '/v1/immunizations',
      {
        schema: routeSchema({
          summary: "the key's immunizations, newest first",
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: {
              limit: { type: 'string', pattern: '^[0-9]{1,3}$', description: 'integer 1…100 (default 20)' },
              status: { type: 'string', enum: ['queued', 'running', 'completed', 'failed', 'canceled'] },
            },
          },
          'x-responses': { 200: { description: '{ items: Job[] }' }, 400: err('invalid limit or status') },
        }),
      },
      async (req) => {
        const caller = identify(req);
        const q = req.query as Record<string, string | undefined>;
        const limit = q['limit'] === undefined ? 20 : Number(q['limit']);
        if (!Number.isInteger(limit) || limit < 1 || limit > 100)
          throw new HttpError(
            400,
            'E_VALIDATION',
            `limit: expected an integer from 1 to 100 but received '${String(q['limit']).slice(0, 20)}'`,
            'limit',
          );
        const status = q['status'];
        if (status !== undefined && !['queued', 'running', 'completed', 'failed', 'canceled'].includes(status))
          throw new HttpError(
            400,
            'E_VALIDATION',
            'status: expected one of queued, running, completed, failed, canceled',
            'status',
          );
        const now = Date.now();
        const items = (await storage.allAsync())
          .filter(
            (r) =>
              r.kind === 'immunization' &&
              r.owner === caller.owner &&
              (status === undefined || r.status === status) &&
              (r.expiresAt === null || Date.parse(r.expiresAt) > now),
          )
          .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
          .slice(0, limit)
          .map(publicRecord);
        return { items };
      },
    );
  };

  // ---- per job: every kind ----
  const jobRoutes: FastifyPluginAsync = async (app) => {
    for (const kind of ['immunization', 'check', 'edit'] as const) {
      const prefix = kind === 'immunization' ? '/v1/immunizations' : kind === 'check' ? '/v1/checks' : '/v1/edits';
      type P = { Params: { id: string } };

      const job = (summary: string, responses: Record<string, unknown>, token = false): { schema: RouteSchema } => ({
        schema: {
          summary,
          params: idParams,
          ...(token ? { querystring: tokenQuery } : {}),
          'x-responses': {
            ...responses,
            400: err('not a job id'),
            401: err('no or wrong key'),
            404: err(`no such ${kind} for this key`),
          },
        },
      });
      app.get<P>(
        `${prefix}/:id`,
        job(`status, progress and result metadata of a ${kind}`, { 200: record }, true),
        (req) => {
          const caller = identify(req, { id: req.params.id, allowToken: true });
          return publicRecord(ownJob(caller, req.params.id, kind));
        },
      );

      app.get<P>(
        `${prefix}/:id/events`,
        job(
          'progress stream (SSE)',
          {
            200: {
              description: 'Server-sent events: status, progress, end',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
          },
          true,
        ),
        (req, reply) => {
          const caller = identify(req, { id: req.params.id, allowToken: true });
          const id = req.params.id;
          ownJob(caller, id, kind);
          return streamEvents(id, req, reply);
        },
      );

      app.post<P>(
        `${prefix}/:id/cancel`,
        job(`cancel a queued or running ${kind}`, { 200: record, 409: err('already finished') }),
        async (req) => {
          const caller = identify(req);
          const r = ownJob(caller, req.params.id, kind);
          if (r.status === 'canceled') return publicRecord(r);
          if (r.status === 'completed' || r.status === 'failed')
            throw new HttpError(
              409,
              'E_CONFLICT',
              `the ${kind} already ${r.status === 'completed' ? 'completed' : 'failed'}`,
            );
          storage.requestCancel(r.id);
          await queueCall(() => queue.cancel(r.id));
          return publicRecord(await settle(r.id));
        },
      );

      app.delete<P>(
        `${prefix}/:id`,
        job(`cancel if needed and delete a ${kind}`, { 204: { description: 'deleted' } }),
        async (req, reply) => {
          const caller = identify(req);
          const r = ownJob(caller, req.params.id, kind);
          // An immunization's checks and edits go with it: queued ones would only fail later, and
          // finished ones would outlive the photo they describe.
          const children = kind === 'immunization' ? (await storage.allAsync()).filter((c) => c.parent === r.id) : [];
          for (const j of [...children, r]) {
            if (!TERMINAL.has(j.status)) {
              storage.requestCancel(j.id);
              await queueCall(() => queue.cancel(j.id));
              await settle(j.id);
            }
            storage.remove(j.id);
          }
          return reply.code(204).send();
        },
      );
    }
  };

  /** Waits briefly for a cancel to take effect (a running job stops within one attack step). */
  async function settle(id: string): Promise<JobRecord> {
    for (let i = 0; i < 100; i++) {
      const r = storage.read(id);
      if (r === null || TERMINAL.has(r.status))
        return (
          r ??
          (() => {
            throw new HttpError(404, 'E_NOT_FOUND', `no job ${id}`);
          })()
        );
      await new Promise((res) => setTimeout(res, 50));
    }
    return storage.read(id)!;
  }

  const resultRoutes: FastifyPluginAsync = async (app) => {
    const own = (summary: string, responses: Record<string, unknown>): { schema: RouteSchema } => ({
      schema: {
        summary,
        params: idParams,
        querystring: tokenQuery,
        'x-responses': {
          ...responses,
          400: err('not a job id'),
          404: err('no such immunization for this key'),
          409: err('not completed'),
        },
      },
    });
    app.get<{ Params: { id: string } }>(
      '/v1/immunizations/:id/result.png',
      own('the immunized PNG', { 200: png }),
      (req, reply) => {
        const caller = identify(req, { id: req.params.id, allowToken: true });
        const r = ownJob(caller, req.params.id, 'immunization');
        if (r.status !== 'completed' || !storage.exists(r.id, 'result.png'))
          throw new HttpError(
            409,
            'E_NOT_READY',
            `the immunization is ${r.status}; the result exists once it is completed`,
          );
        const data = readFileSync(storage.file(r.id, 'result.png'));
        return reply
          .type('image/png')
          .header('Content-Disposition', `attachment; filename="immunized-${r.id}.png"`)
          .header('ETag', `"${String(r.result?.['sha256'] ?? '')}"`)
          .header('Cache-Control', 'private, max-age=3600')
          .send(data);
      },
    );

    app.get<{ Params: { id: string } }>(
      '/v1/immunizations/:id/sidecar.json',
      own('the immunize protect sidecar (server paths out, the model by its id)', {
        200: { description: 'sidecar JSON' },
      }),
      (req) => {
        const caller = identify(req, { id: req.params.id, allowToken: true });
        const r = ownJob(caller, req.params.id, 'immunization');
        if (r.status !== 'completed' || !storage.exists(r.id, 'result.json'))
          throw new HttpError(
            409,
            'E_NOT_READY',
            `the immunization is ${r.status}; the sidecar exists once it is completed`,
          );
        const s = JSON.parse(readFileSync(storage.file(r.id, 'result.json'), 'utf8')) as Record<
          string,
          Record<string, unknown>
        >;
        // Server paths out: only file names, and the model's id.
        s['input'] = { ...s['input'], path: r.input!.file };
        s['output'] = { ...s['output'], path: 'result.png', sidecar: 'result.json' };
        const params = s['parameters'] as Record<string, unknown> | undefined;
        if (params !== undefined) {
          params['model'] = r.options['model'];
          if (params['mask'] !== null && typeof params['mask'] === 'object')
            params['mask'] = { ...(params['mask'] as object), path: r.input!.mask };
        }
        const rec = (s['results']?.['reconstruction'] ?? null) as Record<string, unknown> | null;
        if (rec !== null) rec['model'] = r.options['model'];
        if (Array.isArray(s['attack']?.['encoders'])) s['attack']!['encoders'] = [String(r.options['model'])];
        return s;
      },
    );

    app.post<{ Params: { id: string }; Body: unknown }>(
      '/v1/immunizations/:id/checks',
      {
        schema: routeSchema({
          summary: 'purify the result and check how much protection remains',
          params: idParams,
          body: {
            type: ['object', 'null'],
            additionalProperties: false,
            properties: {
              purifications: {
                type: 'array',
                items: { type: 'string', maxLength: 200 },
                minItems: 1,
                maxItems: MAX_CHECK_ROWS,
              },
            },
          },
          'x-responses': {
            202: record,
            400: err('invalid purification'),
            404: err('no such immunization for this key'),
            409: err('immunization not completed'),
            501: err('no model to check with'),
          },
        }),
      },
      async (req, reply) => {
        const caller = identify(req);
        const parent = ownJob(caller, req.params.id, 'immunization');
        const body = (req.body ?? {}) as Record<string, unknown>;
        if (typeof body !== 'object' || Array.isArray(body))
          throw new HttpError(400, 'E_VALIDATION', 'expected a JSON object { "purifications": [...] }');
        for (const k of Object.keys(body))
          if (k !== 'purifications')
            throw new HttpError(
              400,
              'E_VALIDATION',
              `unknown field '${k.slice(0, 40)}' (expected purifications)`,
              k.slice(0, 40),
            );
        const list = body['purifications'] ?? defaultCheckSuite(cfg.maxSteps);
        if (
          !Array.isArray(list) ||
          list.length === 0 ||
          list.length > MAX_CHECK_ROWS ||
          !list.every((s) => typeof s === 'string')
        )
          throw new HttpError(
            400,
            'E_VALIDATION',
            `purifications: expected 1 to ${MAX_CHECK_ROWS} spec strings such as "jpeg:75"`,
            'purifications',
          );
        let specs: string[];
        try {
          // Bounded parameters and a total cost within --max-steps: refused now, not failing in the runner.
          specs = parseCheckSuite(list as string[], { maxCost: cfg.maxSteps });
        } catch (e) {
          throw new HttpError(
            400,
            'E_VALIDATION',
            `purifications: ${(e as Error).message.split('\n')[0]}`,
            'purifications',
          );
        }
        if (parent.status !== 'completed')
          throw new HttpError(
            409,
            'E_NOT_READY',
            `the immunization is ${parent.status}; it can be checked once it is completed`,
          );
        if (parent.options['model'] === null)
          throw new HttpError(
            501,
            'E_NOT_IMPLEMENTED',
            'checks measure protection through the model a photo was protected against; this immunization used no model (method noise without model)',
          );
        takeCreate(caller);
        await capacity();
        const r = newJobRecord('check', caller.owner);
        r.parent = parent.id;
        r.options = { purifications: specs };
        return accept(r, [], reply);
      },
    );
  };

  await app.register(serviceRoutes);
  await app.register(immunizationRoutes);
  await app.register(jobRoutes);
  await app.register(resultRoutes);
  // ---- "test the protection": edits of the original and the immunized photo (edits.ts) ----
  await app.register(async (app) =>
    registerEditRoutes(app, {
      storage,
      queueKind: queue.kind,
      editing: cfg.editing ?? null,
      identify,
      ownJob,
      takeCreate,
      capacity,
      newRecord: newJobRecord,
      accept,
    }),
  );

  // ---- SSE ----
  /** Open streams end when the server closes (a shutdown must not wait for clients that never hang up). */
  const openStreams = new Set<() => void>();
  app.addHook('preClose', (done) => {
    for (const close of openStreams) close();
    done();
  });

  function streamEvents(id: string, req: FastifyRequest, reply: FastifyReply): void {
    reply.hijack();
    const res = reply.raw;
    const headers: Record<string, string> = {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      'X-Content-Type-Options': 'nosniff',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    };
    const origin = req.headers.origin;
    if (origin !== undefined && cfg.corsOrigins.includes(origin))
      Object.assign(headers, { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' });
    res.writeHead(200, headers);
    let seq = 0;
    let closed = false;
    const send = (event: string, data: unknown): void => {
      if (!closed) res.write(`id: ${++seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const close = (): void => {
      if (closed) return;
      closed = true;
      openStreams.delete(close);
      queue.events.off('status', onStatus);
      queue.events.off('progress', onProgress);
      clearInterval(keepAlive);
      res.end();
    };
    const onStatus = (r: JobRecord): void => {
      if (r.id !== id) return;
      if (TERMINAL.has(r.status)) {
        send('end', publicRecord(r));
        close();
      } else send('status', publicRecord(r));
    };
    const onProgress = (jid: string, p: JobProgress): void => {
      if (jid === id) send('progress', { id, ...p });
    };
    queue.events.on('status', onStatus);
    queue.events.on('progress', onProgress);
    const keepAlive = setInterval(() => {
      if (!closed) res.write(': keep-alive\n\n');
    }, 15_000);
    req.raw.on('close', close);
    openStreams.add(close);
    const r = storage.read(id);
    if (r === null) close();
    else onStatus(r);
  }

  // ---- the web page (issue 9): dist/web, built by `npm run build:web` (docs/web.md) ----
  if (cfg.webRoot !== null && cfg.webRoot !== undefined) registerWebPage(app, { root: cfg.webRoot });

  return { app, metrics };
}
