/**
 * `immunize serve`: the immunization API (docs/api.md, docs/service.md). Embedded by default (jobs
 * run in this process's runner, one at a time, records on disk); with --redis, an API only, and
 * `immunize worker` processes run the jobs.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { buildApi } from '../server/api.js';
import { hashKey, loadKeys, newKey } from '../server/auth.js';
import { parseEditing } from '../server/edits.js';
import { parseModels } from '../server/models.js';
import { EmbeddedQueue, type JobQueue } from '../server/queue.js';
import { RedisQueue } from '../server/redis-queue.js';
import { Storage } from '../server/storage.js';
import { lockStorage } from '../server/storage-lock.js';
import { DEFAULT_WEB_ROOT } from '../server/static-web.js';
import { checkDevice } from '../torch/device.js';
import { defineCommand, flags, parseInteger } from './args.js';
import { UsageError } from '../errors.js';
import { toolVersion } from '../version.js';

const HELP = `Usage: immunize serve [options]

Runs the immunization API (docs/api.md). With no options: http://127.0.0.1:8080, jobs run here one
at a time, records and results in ./immunize-data, no API keys (loopback only).

Options:
  --port N                 port (default 8080; 0 picks a free one)
  --host H                 address to listen on (default 127.0.0.1)
  --storage DIR            job records and results (default $IMMUNIZE_STORAGE or ./immunize-data);
                           one embedded server per directory (a second one refuses to start);
                           with --redis, a directory shared by the API and every worker
  --redis URL              scale out: enqueue to BullMQ on Redis (redis://host:6379/0); run jobs
                           with \`immunize worker --redis URL\` (this process runs none)
  --model [ID=]SPEC        a model clients may choose (repeatable; the first is the default;
                           SPEC as immunize protect --model; default: protect's default)
  --edit-model [ID=]SPEC   an img2img pipeline (diffusers folder or hub id) for "test the protection":
                           POST /v1/immunizations/ID/edits edits the original and the immunized photo
                           with the same prompt and seed (embedded mode; docs/api.md)
  --inpaint-model [ID=]SPEC an inpainting pipeline for the same, mode inpaint (repaints what the
                           immunization's mask did not protect)
  --max-edit-steps N       largest steps an edit request may ask (default 100)
  --device D               cpu (default) | cuda | cuda:N (embedded mode)
  --threads N              libtorch threads per job (default: all cores)
  --keys-file PATH         API keys: lines 'NAME sha256:<hex>' (also $IMMUNIZE_API_KEYS:
                           'NAME:sha256:<hex>,...'); without keys only loopback hosts are allowed
  --max-upload-bytes N     per uploaded file (default 20000000)
  --max-pixels N           per image, checked from the header before decoding (default 16000000)
  --max-steps N            largest steps a request may ask (default 1000)
  --rate-create N          new jobs per minute per key (default 30; 0 = unlimited)
  --rate-requests N        requests per minute per key (default 600; 0 = unlimited)
  --max-queue N            queued + running jobs before 503 (default 1000)
  --retention T            keep finished jobs this long: 30m, 24h, 7d (default 24h)
  --cors-origin ORIGIN     allow this browser origin (repeatable; default: CORS off)
  --web DIR                serve the web page from DIR at / (default: dist/web, npm run build:web)
  --prefix P               Redis key prefix (default bull)
  --new-key                print a new random API key and its hash line, and exit
  --hash-key               read a key from stdin, print its sha256:<hex>, and exit
  -h, --help               this help`;

export function parseDuration(flag: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
  if (m === null) throw new UsageError(`--${flag}: expected a duration like 30m, 24h or 7d but received '${v}'`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 's']!;
  return Math.round(Number(m[1]) * unit);
}

/**
 * Whether every address `host` stands for is a loopback address. Names are resolved first and
 * the addresses checked, so '127.attacker.example' (a name, not an address) is judged by where it
 * points; a name that does not resolve is not loopback.
 */
export async function isLoopbackHost(host: string): Promise<boolean> {
  let addresses: string[];
  try {
    addresses = isIP(host) !== 0 ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  } catch {
    return false;
  }
  return addresses.length > 0 && addresses.every(isLoopbackAddress);
}

function isLoopbackAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  const v4 = isIP(address) === 4 ? address : mapped;
  if (v4 !== undefined) return v4.split('.')[0] === '127';
  return isIP(address) === 6 && /^(0{0,4}:){2,7}0{0,3}1$|^::1$/.test(address);
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

/** How long a graceful stop may take before the process exits anyway (exit code 1). */
export const SHUTDOWN_GRACE_MS = 10_000;

/** Stops on SIGINT/SIGTERM (a second signal exits at once, and so does a stop that overruns the grace). */
export function onShutdown(fn: () => Promise<void>): Promise<void> {
  return new Promise((res) => {
    let stopping = false;
    const handler = (): void => {
      if (stopping) process.exit(130);
      stopping = true;
      setTimeout(() => {
        process.stderr.write(`immunize: did not stop within ${SHUTDOWN_GRACE_MS / 1000} s; exiting\n`);
        process.exit(1);
      }, SHUTDOWN_GRACE_MS).unref();
      void fn().finally(() => {
        res();
        // Stopped: what may still hold the event loop (BullMQ's own connections retrying a stopped
        // Redis) has nothing left to do. Exits with the command's code, set once it has returned.
        setTimeout(() => process.exit(), 100).unref();
      });
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}

export const command = defineCommand({
  summary: 'run the immunization API (HTTP, job queue; --redis to scale out with workers)',
  help: HELP,
  options: flags({
    values:
      'port host storage redis device threads keys-file max-upload-bytes max-pixels max-steps rate-create rate-requests max-queue retention edit-model inpaint-model max-edit-steps web prefix',
    switches: 'new-key hash-key',
    lists: 'model cors-origin',
  }),
  positionals: false,
  async run({ values }) {
    if (values['new-key']) {
      const k = newKey();
      console.log(
        `key (give to the client, store nowhere else): ${k}\nline for --keys-file:                        NAME ${hashKey(k)}`,
      );
      return 0;
    }
    if (values['hash-key']) {
      const k = await readStdin();
      if (k === '') throw new UsageError('--hash-key: no key on stdin');
      console.log(hashKey(k));
      return 0;
    }
    const port = parseInteger('port', values.port, { min: 0, max: 65535 }) ?? 8080;
    const host = values.host ?? '127.0.0.1';
    const keys = loadKeys({ env: process.env['IMMUNIZE_API_KEYS'], file: values['keys-file'] });
    if (keys.length === 0 && !(await isLoopbackHost(host)))
      throw new UsageError(
        `refusing to listen on ${host} without API keys: give --keys-file or $IMMUNIZE_API_KEYS (immunize serve --new-key makes one), or listen on 127.0.0.1`,
      );
    const models = parseModels(values.model);
    const editing = parseEditing({
      editModel: values['edit-model'],
      inpaintModel: values['inpaint-model'],
      maxSteps: parseInteger('max-edit-steps', values['max-edit-steps'], { min: 1, max: 1000 }),
    });
    if (editing !== null && values.redis !== undefined)
      process.stderr.write(
        'immunize serve: --edit-model is ignored with --redis (edits run only with the embedded queue; POST …/edits answers 501)\n',
      );
    const device = checkDevice(values.device ?? 'cpu');
    const threads = parseInteger('threads', values.threads, { min: 1, max: 1024 });
    const maxPixels = parseInteger('max-pixels', values['max-pixels'], { min: 1 }) ?? 16_000_000;
    const retentionMs = parseDuration('retention', values.retention, 86_400_000);
    for (const o of values['cors-origin'] ?? [])
      if (!/^https?:\/\/[^/\s]+$/.test(o))
        throw new UsageError(`--cors-origin: expected an origin like https://app.example.com but received '${o}'`);
    const root = resolve(values.storage ?? process.env['IMMUNIZE_STORAGE'] ?? 'immunize-data');
    // Before anything reads or writes the storage: an embedded server must be its only user.
    const lock = lockStorage(root, values.redis === undefined ? 'exclusive' : 'shared');
    const storage = new Storage(root);
    const queue: JobQueue =
      values.redis !== undefined
        ? new RedisQueue(storage, values.redis, retentionMs, values.prefix)
        : new EmbeddedQueue(storage, {
            device,
            maxPixels,
            models,
            retentionMs,
            ...(editing === null ? {} : { editing: { img2img: editing.img2img, inpaint: editing.inpaint } }),
            ...(threads === undefined ? {} : { threads }),
          });
    const { app } = await buildApi(storage, queue, {
      models,
      keys,
      maxPixels,
      retentionMs,
      version: toolVersion(),
      editing,
      maxUploadBytes: parseInteger('max-upload-bytes', values['max-upload-bytes'], { min: 1 }) ?? 20_000_000,
      maxSteps: parseInteger('max-steps', values['max-steps'], { min: 1 }) ?? 1000,
      rateCreate: parseInteger('rate-create', values['rate-create'], { min: 0 }) ?? 30,
      rateRequests: parseInteger('rate-requests', values['rate-requests'], { min: 0 }) ?? 600,
      maxQueue: parseInteger('max-queue', values['max-queue'], { min: 1 }) ?? 1000,
      corsOrigins: values['cors-origin'] ?? [],
      webRoot: values.web ?? DEFAULT_WEB_ROOT,
    });
    // The port first, the queue after: a server that cannot listen (port taken, host unknown)
    // exits without having run or re-queued a job.
    try {
      await app.listen({ port, host });
      await queue.start();
    } catch (e) {
      await app.close();
      await queue.close();
      lock.release();
      throw e;
    }
    const sweep = setInterval(() => storage.sweep(), Math.min(60_000, Math.max(1000, retentionMs / 10)));
    const addr = app.server.address();
    const actual = typeof addr === 'object' && addr !== null ? addr.port : port;
    // One line on stdout that scripts (and the tests) wait for.
    console.log(
      JSON.stringify({
        listening: `http://${host.includes(':') ? `[${host}]` : host}:${actual}`,
        queue: queue.kind,
        storage: storage.root,
        auth: keys.length === 0 ? 'none' : 'api-key',
        models: models.map((m) => m.id),
      }),
    );
    await onShutdown(async () => {
      clearInterval(sweep);
      await app.close();
      await queue.close();
      lock.release();
    });
    return 0;
  },
});
