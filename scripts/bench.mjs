// Runs the benchmarks: every dist/bench/*.bench.js case in its own child process (so peak RSS
// is per case), plus the C++ twin of the conv-net case (bench/cpp/convnet_bench.cpp, compiled
// here against the same libtorch). Forwards each JSON line on stdout and ends with the TS/C++
// ratio. Exit status is non-zero when a case fails.
//   node scripts/bench.mjs [--quick] [filter ...]
// A filter keeps the cases whose name or bench file name contains it (the C++ cases count as
// file "engine-cpp"). Threads: $IMMUNIZE_NUM_THREADS, else every core; TS and C++ get the same.
// The conv net runs as alternating TS / C++ rounds (4 × 5 steps each; --quick 1 × 3), each in
// its own process, so load from other work on the machine hits both sides alike.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLibtorch } from './find-libtorch.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const unknown = args.filter((a) => a.startsWith('-') && a !== '--quick');
if (unknown.length > 0) {
  console.error(`bench: unknown option ${unknown.join(' ')} (usage: node scripts/bench.mjs [--quick] [filter ...])`);
  process.exit(2);
}
const filters = args.filter((a) => !a.startsWith('-'));
const threads = Number(process.env.IMMUNIZE_NUM_THREADS || availableParallelism());
const childEnv = {
  ...process.env,
  IMMUNIZE_NUM_THREADS: String(threads),
  ...(quick ? { IMMUNIZE_BENCH_QUICK: '1' } : {}),
};
const wanted = (file, name) => filters.length === 0 || filters.some((f) => name.includes(f) || file.includes(f));

const results = new Map();
let failed = 0;

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

/** Forwards the child's JSON lines (other stdout lines go to stderr); records results by name. */
function forward(stdout) {
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    let obj;
    try {
      obj = JSON.parse(line);
    } catch {
      process.stderr.write(line + '\n');
      continue;
    }
    if (obj && typeof obj.name === 'string') results.set(obj.name, obj);
    process.stdout.write(line + '\n');
  }
}

function run(cmd, argv, label, env = {}) {
  const r = spawnSync(cmd, argv, {
    cwd: root,
    env: { ...childEnv, ...env },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.stderr) process.stderr.write(r.stderr);
  if (r.error || r.status !== 0) {
    failed++;
    const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit ${r.status}`;
    emit({ name: label, failed: why });
  }
  return r.stdout ?? '';
}

// ---- C++ twin -------------------------------------------------------------------------------
// Its cases count as bench file "engine-cpp" for filters ("engine" and "cpp" both select them).
const CPP_FILE = 'engine-cpp';

/** Builds bench/cpp/build/convnet_bench when missing or older than its source; returns the path or a skip reason. */
function buildCpp() {
  const src = join(root, 'bench', 'cpp', 'convnet_bench.cpp');
  const outDir = join(root, 'bench', 'cpp', 'build');
  const exe = join(outDir, 'convnet_bench');
  if (existsSync(exe) && statSync(exe).mtimeMs >= statSync(src).mtimeMs) return { exe };
  const lt = findLibtorch();
  if (lt.error) return { skipped: `libtorch headers/libraries not found: ${lt.error.split('\n')[0]}` };
  const cxx = process.env.CXX || 'g++';
  const probe = spawnSync(cxx, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return { skipped: `no C++ compiler (${cxx}) on PATH` };
  mkdirSync(outDir, { recursive: true });
  const flags = [
    '-std=c++17',
    '-O2',
    `-D_GLIBCXX_USE_CXX11_ABI=${lt.cxx11abi}`,
    '-Wno-deprecated-declarations',
    ...lt.includes.map((i) => `-I${i}`),
    src,
    '-o',
    exe,
    `-L${lt.libDir}`,
    '-Wl,--no-as-needed',
    ...lt.libs.map((l) => `-l${l}`),
    `-Wl,-rpath,${lt.libDir}`,
  ];
  console.error(`bench: compiling ${basename(src)} against ${lt.source}`);
  const r = spawnSync(cxx, flags, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) {
    process.stderr.write(r.stdout + r.stderr);
    return { skipped: `compiling ${basename(src)} failed (exit ${r.status}; compiler output above)` };
  }
  return { exe };
}

let cpp = null;
function cppExe() {
  cpp ??= buildCpp();
  return cpp;
}

const warmupSteps = quick ? 1 : 2;

function runCppAdd() {
  const names = ['cpp_add_unboxed', 'cpp_add_boxed'].filter((n) => wanted(CPP_FILE, n));
  if (names.length === 0) return;
  const built = cppExe();
  if (built.skipped) {
    for (const n of names) emit({ name: n, skipped: built.skipped });
    return;
  }
  forward(run(built.exe, ['add', String(threads), quick ? '1000' : '2000', quick ? '20' : '50'], 'cpp_add'));
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = (s.length - 1) / 2;
  return (s[Math.floor(m)] + s[Math.ceil(m)]) / 2;
};
const r4 = (v) => Number(v.toPrecision(4));

/**
 * The conv net in TS and in C++, in alternating rounds (each run its own process) so that both
 * sides see the same mix of machine load; then the TS/C++ ratio of the pooled medians.
 */
function runConvnet(tsFile) {
  const wantTs = tsFile !== null && wanted('engine', 'convnet_256_ts');
  const wantCpp = wanted(CPP_FILE, 'convnet_256_cpp');
  if (!wantTs && !wantCpp) return;
  const built = wantCpp ? cppExe() : null;
  if (built?.skipped) emit({ name: 'convnet_256_cpp', skipped: built.skipped });
  const haveCpp = wantCpp && !built.skipped;
  const rounds = wantTs && haveCpp ? (quick ? 1 : 4) : 1;
  const steps = wantTs && haveCpp ? (quick ? 3 : 5) : quick ? 3 : 10;
  const pooled = { ts: [], cpp: [] };
  const roundRatios = [];
  const tag = (stdout, round, side) => {
    const out = [];
    for (const line of stdout.split('\n')) {
      try {
        const obj = JSON.parse(line);
        if (obj.name === `convnet_256_${side}`) {
          pooled[side].push(...(obj.samples_msPerStep ?? []));
          out.push(JSON.stringify({ ...obj, round, rounds }));
          if (obj.loss !== undefined) pooled[`${side}Loss`] = obj.loss;
          pooled[`${side}Median`] = obj.msPerStep;
          continue;
        }
      } catch {
        /* not JSON: forwarded as is */
      }
      out.push(line);
    }
    forward(out.join('\n'));
  };
  for (let round = 1; round <= rounds; round++) {
    if (wantTs) {
      const env = { IMMUNIZE_BENCH_STEPS: String(steps) };
      tag(
        run(process.execPath, ['--expose-gc', tsFile, '--case', 'convnet_256_ts'], 'convnet_256_ts', env),
        round,
        'ts',
      );
    }
    if (haveCpp)
      tag(
        run(built.exe, ['convnet', String(threads), '256', String(steps), String(warmupSteps)], 'convnet_256_cpp'),
        round,
        'cpp',
      );
    if (pooled.tsMedian && pooled.cppMedian) roundRatios.push(r4(pooled.tsMedian / pooled.cppMedian));
    pooled.tsMedian = pooled.cppMedian = undefined;
  }
  if (pooled.ts.length > 0 && pooled.cpp.length > 0) {
    const ts = median(pooled.ts);
    const cc = median(pooled.cpp);
    emit({
      name: 'convnet_256_ts_over_cpp',
      ratio: r4(ts / cc),
      ratioMin: r4(Math.min(...pooled.ts) / Math.min(...pooled.cpp)),
      roundRatios,
      ts_msPerStep: r4(ts),
      cpp_msPerStep: r4(cc),
      nEach: pooled.ts.length,
      threads,
      sameLoss: Math.abs(pooled.tsLoss - pooled.cppLoss) <= 1e-6 * Math.abs(pooled.cppLoss),
    });
  }
}

// ---- TypeScript benches ---------------------------------------------------------------------
const distBench = join(root, 'dist', 'bench');
if (!existsSync(distBench)) {
  console.error('bench: dist/bench/ is missing; build first (npm run build:ts)');
  process.exit(1);
}
const files = readdirSync(distBench)
  .filter((f) => f.endsWith('.bench.js'))
  .sort();
if (files.length === 0) {
  console.error('bench: no dist/bench/*.bench.js files; build first (npm run build:ts)');
  process.exit(1);
}
console.error(
  `bench: ${threads} thread(s)${quick ? ', quick' : ''}${filters.length ? `, filters: ${filters.join(' ')}` : ''}`,
);

let engineFile = null;
for (const f of files) {
  const file = join(distBench, f);
  const stem = f.replace(/\.bench\.js$/, '');
  const listed = spawnSync(process.execPath, [file, '--list'], { cwd: root, env: childEnv, encoding: 'utf8' });
  let cases;
  try {
    cases = JSON.parse(listed.stdout.trim().split('\n').pop()).cases;
  } catch {
    process.stderr.write(listed.stderr ?? '');
    failed++;
    emit({ name: stem, failed: `could not list its cases (exit ${listed.status})` });
    continue;
  }
  for (const name of cases) {
    if (!wanted(stem, name)) continue;
    if (stem === 'engine' && name === 'convnet_256_ts') continue; // run with its C++ twin below
    forward(run(process.execPath, ['--expose-gc', file, '--case', name], name));
  }
  if (stem === 'engine') {
    engineFile = file;
    runCppAdd();
    runConvnet(file);
  }
}
if (engineFile === null) {
  runCppAdd();
  runConvnet(null);
}

if (failed > 0) {
  console.error(`bench: ${failed} case(s) failed`);
  process.exit(1);
}
