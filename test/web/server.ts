// Starts the real API with the web page, in this process, on a free loopback port: the embedded
// queue, storage in a temporary folder, TAEF2 as the only model, no API keys (loopback), and the
// page registered through registerWebPage (the seam documented in docs/web.md).
import { buildApi } from '../../src/server/api.js';
import { EmbeddedQueue } from '../../src/server/queue.js';
import { Storage } from '../../src/server/storage.js';
import { registerWebPage } from '../../src/server/static-web.js';
import { tempDir } from './harness.js';

export interface TestServer { url: string; close(): Promise<void> }

export async function startServer(modelPath: string): Promise<TestServer> {
  const dir = tempDir('immunize-web-');
  const storage = new Storage(dir.path);
  const models = [{ id: 'taef2-hf', spec: modelPath }];
  const retentionMs = 3_600_000;
  const queue = new EmbeddedQueue(storage, { device: 'cpu', maxPixels: 16_000_000, models, retentionMs, threads: 1 });
  await queue.start();
  const { app } = await buildApi(storage, queue, {
    models, keys: [], maxUploadBytes: 20_000_000, maxPixels: 16_000_000, maxSteps: 1000, rateCreate: 1000,
    rateRequests: 100_000, maxQueue: 100, retentionMs, corsOrigins: [], version: 'test', webRoot: null, logger: false,
  });
  registerWebPage(app);
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url: address,
    close: async () => {
      await app.close();
      await queue.close();
      dir.remove();
    },
  };
}
