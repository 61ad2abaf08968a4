/**
 * How fast malformed safetensors files are refused (the tests check that they are refused, and
 * without a huge allocation; how long it takes is measured here, not asserted on a shared CPU):
 * a header length of 2^62, and each file of the conformance case golden/safetensors/invalid.
 */
import { readdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { loadSafetensors } from '../src/io/tensors.js';
import { quick, runBench, sharedFile, summarize, timeCalls } from './harness.js';

/** Calls `f`, which must throw (a refused file); a file that is accepted is a failed case. */
function refuses(f: () => void, what: string): () => void {
  return () => {
    try {
      f();
    } catch {
      return;
    }
    throw new Error(`${what} was accepted`);
  };
}

await runBench([
  {
    name: 'safetensors_refuse_huge_header_len',
    run: () => {
      const path = join(mkdtempSync(join(tmpdir(), 'immunize-bench-')), 'huge.safetensors');
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(2n ** 62n);
      writeFileSync(path, Buffer.concat([prefix, Buffer.from('{}')]));
      const call = refuses(() => SafetensorsFile.open(path), path);
      return {
        what: 'SafetensorsFile.open of a file whose header length field is 2^62',
        ...summarize(timeCalls(call, quick ? 10 : 50, 100, 100), 'usPerCall'),
      };
    },
  },
  {
    name: 'safetensors_refuse_golden_invalid',
    run: () => {
      const dir = sharedFile('golden', 'safetensors', 'invalid');
      if ('skipped' in dir) return dir;
      const files = readdirSync(dir.path)
        .filter((f) => f.endsWith('.safetensors'))
        .map((f) => join(dir.path, f));
      // One sample: open + read every entry, then loadSafetensors, of every invalid file (both refuse).
      const call = () => {
        for (const path of files) {
          refuses(() => {
            using file = SafetensorsFile.open(path);
            for (const name of file.keys()) file.readBytes(name);
          }, path)();
          refuses(() => loadSafetensors(path), path)();
        }
      };
      return {
        what: `SafetensorsFile.open + read and loadSafetensors of each of the ${files.length} files in golden/safetensors/invalid (µs for all of them)`,
        files: files.length,
        ...summarize(timeCalls(call, quick ? 5 : 20, 1, 2), 'usPerCall'),
      };
    },
  },
]);
