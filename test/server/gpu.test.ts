// GPU memory for /metrics, read through nvidia-smi (a fake one here: this machine has no GPU).
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gpuMemory, parseNvidiaSmi } from '../../src/server/gpu.js';

const MIB = 1024 * 1024;

test('parses nvidia-smi CSV (MiB) and skips what is not a number', () => {
  assert.deepEqual(parseNvidiaSmi('0, 1024, 81559\n1, [N/A], 81559\n2, 3.5, 16384\n\n'), [
    { index: 0, usedBytes: 1024 * MIB, totalBytes: 81559 * MIB },
    { index: 2, usedBytes: 3.5 * MIB, totalBytes: 16384 * MIB },
  ]);
  assert.deepEqual(parseNvidiaSmi('index, memory.used [MiB], memory.total [MiB]'), []);
});

test('runs the command with the query it parses; no command means no GPUs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'immunize-gpu-'));
  const fake = join(dir, 'nvidia-smi');
  // Answers only the exact query, so a changed query fails the test.
  writeFileSync(
    fake,
    '#!/bin/sh\n[ "$1" = "--query-gpu=index,memory.used,memory.total" ] && [ "$2" = "--format=csv,noheader,nounits" ] && echo "0, 2048, 143771" || exit 3\n',
  );
  chmodSync(fake, 0o755);
  assert.deepEqual(await gpuMemory({ command: fake, maxAgeMs: 0 }), [
    { index: 0, usedBytes: 2048 * MIB, totalBytes: 143771 * MIB },
  ]);
  assert.deepEqual(await gpuMemory({ command: join(dir, 'missing'), maxAgeMs: 0 }), []);
  const failing = join(dir, 'failing');
  writeFileSync(failing, '#!/bin/sh\necho "NVIDIA-SMI has failed" >&2\nexit 9\n');
  chmodSync(failing, 0o755);
  assert.deepEqual(await gpuMemory({ command: failing, maxAgeMs: 0 }), []);
});
