/** `immunize info`: what this installation runs on (libtorch, threads, CUDA). */
import { defineCommand, flags } from './args.js';
import { cudaDeviceCount, torchInfo } from '../torch/index.js';

const HELP =
  'Usage: immunize info [--json]\n\nPrints the libtorch version, the thread count and the CUDA devices this build can use.';

export const command = defineCommand({
  summary: 'show the tensor engine: libtorch version, threads, CUDA devices',
  help: HELP,
  options: flags({ switches: 'json' }),
  positionals: false,
  async run({ values }) {
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
});
