/** `immunize info`: what this installation runs on (libtorch, threads, CUDA). */
import { parseArgs } from 'node:util';
import { cudaDeviceCount, torchInfo } from '../torch/index.js';

export const info = {
  summary: 'show the tensor engine: libtorch version, threads, CUDA devices',
  async run(args: string[]): Promise<number> {
    const { values } = parseArgs({
      args,
      options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) {
      console.log(
        'Usage: immunize info [--json]\n\nPrints the libtorch version, the thread count and the CUDA devices this build can use.',
      );
      return 0;
    }
    const i = torchInfo();
    const report = {
      libtorch: i.torchVersion,
      threads: i.threads,
      cuda: i.hasCuda,
      cudaDevices: cudaDeviceCount(),
      node: process.version,
    };
    if (values.json) console.log(JSON.stringify(report));
    else for (const [k, v] of Object.entries(report)) console.log(`${k.padEnd(12)} ${String(v)}`);
    return 0;
  },
};
