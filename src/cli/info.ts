/** `immunize info`: what this installation runs on (libtorch, threads, CUDA). */
import { parseCommand } from './args.js';
import { cudaDeviceCount, torchInfo } from '../torch/index.js';

const HELP =
  'Usage: immunize info [--json]\n\nPrints the libtorch version, the thread count and the CUDA devices this build can use.';

export const info = {
  summary: 'show the tensor engine: libtorch version, threads, CUDA devices',
  async run(args: string[]): Promise<number> {
    const parsed = parseCommand(args, HELP, { json: { type: 'boolean' } }, false);
    if (parsed === null) return 0;
    const { values } = parsed;
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
