/**
 * GPU memory for /metrics, read with `nvidia-smi` (what every NVIDIA driver installs) rather than
 * through libtorch: the jobs run in other processes (runners, workers), and the API process
 * itself may have a CPU-only libtorch. No nvidia-smi (or a failing one) means no GPU gauges.
 */
import { execFile } from 'node:child_process';

export interface GpuMemory {
  index: number;
  usedBytes: number;
  totalBytes: number;
}

const MIB = 1024 * 1024;

/** Parses `nvidia-smi --query-gpu=index,memory.used,memory.total --format=csv,noheader,nounits` (MiB). */
export function parseNvidiaSmi(text: string): GpuMemory[] {
  const out: GpuMemory[] = [];
  for (const line of text.split('\n')) {
    const parts = line.split(',').map((p) => p.trim());
    if (parts.length !== 3 || parts.some((p) => !/^\d+(\.\d+)?$/.test(p))) continue; // "[N/A]", headers, blanks
    const [index, used, total] = parts.map(Number) as [number, number, number];
    out.push({ index, usedBytes: used * MIB, totalBytes: total * MIB });
  }
  return out;
}

let cache: { at: number; value: GpuMemory[] } | null = null;

/** Current GPU memory, cached for 5 s (scrapes come often; nvidia-smi takes ~50 ms). */
export function gpuMemory(o: { command?: string; maxAgeMs?: number } = {}): Promise<GpuMemory[]> {
  const command = o.command ?? process.env['IMMUNIZE_NVIDIA_SMI'] ?? 'nvidia-smi';
  const maxAge = o.maxAgeMs ?? 5000;
  if (cache !== null && Date.now() - cache.at < maxAge) return Promise.resolve(cache.value);
  return new Promise((resolve) => {
    execFile(
      command,
      ['--query-gpu=index,memory.used,memory.total', '--format=csv,noheader,nounits'],
      { timeout: 2000 },
      (err, stdout) => {
        const value = err ? [] : parseNvidiaSmi(stdout);
        cache = { at: Date.now(), value };
        resolve(value);
      },
    );
  });
}
