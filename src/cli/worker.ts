/** `immunize worker --redis URL`: runs the API's jobs from BullMQ, one at a time (one worker per GPU). */
import { resolve } from 'node:path';
import { parseModels } from '../server/models.js';
import { startWorker } from '../server/redis-queue.js';
import { Storage } from '../server/storage.js';
import { lockStorage } from '../server/storage-lock.js';
import { checkDevice } from '../torch/device.js';
import { defineCommand, flags, parseInteger } from './args.js';
import { UsageError } from '../errors.js';
import { onShutdown, parseDuration } from './serve.js';

const HELP = `Usage: immunize worker --redis URL [options]

Consumes the jobs that \`immunize serve --redis URL\` accepts, one at a time. Start one per GPU
(--device cuda:N), on any number of machines; all must see the same --storage directory.

Options:
  --redis URL              the API's Redis (required)
  --storage DIR            the storage directory shared with the API (default $IMMUNIZE_STORAGE
                           or ./immunize-data)
  --model [ID=]SPEC        the models the API offers, by the same ids (repeatable; paths may differ)
  --device D               cpu (default) | cuda | cuda:N
  --threads N              libtorch threads per job (default: all cores)
  --max-pixels N           as the API's (default 16000000)
  --retention T            keep finished jobs this long (default 24h; as the API's)
  --lock-ms N              how long a dead worker's job waits before another takes it
                           (BullMQ lock duration, default 30000)
  --prefix P               Redis key prefix (default bull; as the API's)
  -h, --help               this help`;

export const command = defineCommand({
  summary: 'run immunization jobs from Redis (scale-out for immunize serve --redis)',
  help: HELP,
  options: flags({ values: 'redis storage device threads max-pixels retention lock-ms prefix', lists: 'model' }),
  positionals: false,
  async run({ values }) {
    if (values.redis === undefined)
      throw new UsageError('--redis URL is required (the Redis that immunize serve --redis uses)');
    const root = resolve(values.storage ?? process.env['IMMUNIZE_STORAGE'] ?? 'immunize-data');
    // Refused beside an embedded server, which would run the same jobs.
    const lock = lockStorage(root, 'shared');
    const storage = new Storage(root);
    const threads = parseInteger('threads', values.threads, { min: 1, max: 1024 });
    const w = startWorker(storage, {
      redis: values.redis,
      device: checkDevice(values.device ?? 'cpu'),
      models: parseModels(values.model),
      maxPixels: parseInteger('max-pixels', values['max-pixels'], { min: 1 }) ?? 16_000_000,
      retentionMs: parseDuration('retention', values.retention, 86_400_000),
      lockMs: parseInteger('lock-ms', values['lock-ms'], { min: 1000 }) ?? 30_000,
      ...(values.prefix === undefined ? {} : { prefix: values.prefix }),
      ...(threads === undefined ? {} : { threads }),
    });
    await w.worker.waitUntilReady();
    console.log(JSON.stringify({ worker: 'ready', pid: process.pid, storage: storage.root }));
    await onShutdown(async () => {
      await w.close();
      lock.release();
    });
    return 0;
  },
});
