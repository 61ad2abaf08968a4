// `immunize purify`: outputs equal the library's result, naming of outputs, and the errors —
// one line each, nothing written when the spec or any input is bad.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { run } from '../../src/cli/main.js';
import { readImage } from '../../src/io/images.js';
import { purify } from '../../src/purify/spec.js';
import { noGrad, scope } from '../../src/torch/index.js';
import { assertMentions, immunizeCli } from '../helpers/cli.js';
import { sharedPath, skipReason } from '../helpers/shared.js';

const immunize = immunizeCli({ IMMUNIZE_QUIET: '1', IMMUNIZE_NUM_THREADS: '1', OMP_WAIT_POLICY: 'passive' });

/** The CLI in this process (spawning costs seconds of start-up per call on a loaded machine). */
async function inProcess(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => {
    out.push(a.join(' '));
  };
  console.error = (...a: unknown[]) => {
    err.push(a.join(' '));
  };
  const quiet = process.env['IMMUNIZE_QUIET'];
  process.env['IMMUNIZE_QUIET'] = '1';
  try {
    const status = await run(args);
    return { status, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    [console.log, console.error] = [log, error];
    if (quiet === undefined) delete process.env['IMMUNIZE_QUIET'];
    else process.env['IMMUNIZE_QUIET'] = quiet;
  }
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'immunize-purify-'));
  dirs.push(d);
  return d;
}

/** A small textured PNG (no shared data needed). */
async function photo(path: string, seed: number, w = 40, h = 32): Promise<string> {
  const raw = Buffer.alloc(w * h * 3);
  for (let i = 0; i < raw.length; i++)
    raw[i] = (Math.sin(i * 0.05 + seed) * 80 + 128 + ((i * 7919 * (seed + 1)) % 41)) & 255;
  await sharp(raw, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(path);
  return path;
}

test('one image: the PNG written equals the library result, the JSON line reports it', async () => {
  const d = tmp();
  const input = await photo(join(d, 'a.png'), 1);
  const out = join(d, 'out', 'a-jpeg.png');
  const r = immunize('purify', input, '--apply', 'jpeg:75+blur:1', '-o', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const line = JSON.parse(r.stdout.trim()) as {
    output: string;
    spec: string;
    width: number;
    height: number;
    psnrDb: number;
  };
  assert.equal(line.output, out);
  assert.equal(line.spec, 'jpeg:75+blur:1');
  assert.deepEqual([line.width, line.height], [40, 32]);
  assert.ok(line.psnrDb > 15 && line.psnrDb < 60, `PSNR ${line.psnrDb}`);
  const meta = await sharp(out).metadata();
  assert.equal(meta.format, 'png');
  const { tensor: x } = await readImage(input);
  const want = await purify(x, 'jpeg:75+blur:1');
  const { tensor: got } = await readImage(out);
  const diff = noGrad(() => scope(() => got.sub(want).abs().max().item() * 255));
  assert.ok(diff <= 0.5 + 1e-3, `max |CLI − library| ${diff} grey levels (only the 8-bit rounding may differ)`);
  assert.deepEqual(readdirSync(join(d, 'out')), ['a-jpeg.png'], 'no temporaries left');
});

test('several inputs (files and a folder) into a folder, and the default name next to the input', async () => {
  const d = tmp();
  mkdirSync(join(d, 'album'));
  await photo(join(d, 'album', 'b.png'), 2);
  await photo(join(d, 'album', 'c.png'), 3);
  const single = await photo(join(d, 'a.png'), 1);
  const r = immunize(
    'purify',
    single,
    join(d, 'album'),
    '--apply',
    'resize:0.5:lanczos+noise:gaussian:0.01',
    '-o',
    join(d, 'out') + '/',
  );
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(join(d, 'out')).sort(), ['a.purified.png', 'b.purified.png', 'c.purified.png']);
  const r2 = await inProcess('purify', single, '--apply', 'hflip');
  assert.equal(r2.status, 0, r2.stderr);
  const [a, b] = await Promise.all([sharp(single).raw().toBuffer(), sharp(join(d, 'a.purified.png')).raw().toBuffer()]);
  assert.equal(a.length, b.length);
  // hflip: the first pixel of the output is the last pixel of the input's first row.
  assert.deepEqual([...b.subarray(0, 3)], [...a.subarray(39 * 3, 40 * 3)]);
  // A folder run skips earlier purify outputs.
  const r3 = await inProcess('purify', d, '--apply', 'none', '-o', join(d, 'again') + '/');
  assert.equal(r3.status, 0, r3.stderr);
  assert.deepEqual(readdirSync(join(d, 'again')), ['a.purified.png']);
});

test('bad specs, files and outputs: one clear line, exit code, nothing written', async () => {
  const d = tmp();
  const good = await photo(join(d, 'good.png'), 4);
  writeFileSync(join(d, 'broken.png'), 'not an image');
  const out = join(d, 'out');
  const cases: { args: string[]; status: number; re: RegExp }[] = [
    {
      args: [good, '--apply', 'jpg:75', '-o', out + '/'],
      status: 2,
      re: /--apply: invalid purification 'jpg:75': unknown purification 'jpg' \(did you mean 'jpeg'\?\)/,
    },
    {
      args: [good, '--apply', 'jpeg:75+blur', '-o', out + '/'],
      status: 2,
      re: /'blur' in 'jpeg:75\+blur': sigma is missing/,
    },
    { args: [good, '-o', out + '/'], status: 2, re: /--apply is required/ },
    { args: ['--apply', 'jpeg:75'], status: 2, re: /at least one input/ },
    {
      args: [join(d, 'nope.png'), '--apply', 'jpeg:75', '-o', out + '/'],
      status: 2,
      re: /input image not found: .*nope\.png/,
    },
    {
      args: [good, join(d, 'broken.png'), '--apply', 'jpeg:75', '-o', out + '/'],
      status: 1,
      re: /broken\.png: not a readable image/,
    },
    { args: [good, '--apply', 'jpeg:75', '-o', join(out, 'x.jpg')], status: 2, re: /must be a \.png file/ },
    {
      args: [good, good.replace('good', 'broken'), '--apply', 'jpeg:75', '-o', join(out, 'x.png')],
      status: 2,
      re: /-o must be a folder/,
    },
    { args: [good, '--apply', 'jpeg:75', '-o', good], status: 2, re: /overwrite the input/ },
    { args: [good, '--apply', 'jpeg:75', '--bogus'], status: 2, re: /bogus/ },
  ];
  for (const [i, c] of cases.entries()) {
    // The first through the real executable, the rest in this process.
    const r = i === 0 ? immunize('purify', ...c.args) : await inProcess('purify', ...c.args);
    assert.equal(r.status, c.status, `${c.args.join(' ')}: exit ${r.status}, stderr ${r.stderr}`);
    assert.match(r.stderr, c.re, c.args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.ok(!existsSync(out), `${c.args.join(' ')} wrote ${out}`);
  }
  assert.deepEqual(readdirSync(d).sort(), ['broken.png', 'good.png']);
});

test('impress with --model (TAEF2): runs on a size the model does not divide; --model is required by it only', async (t) => {
  const model = sharedPath('models', 'taef2-hf');
  if (model === null) return t.skip(skipReason('models', 'taef2-hf'));
  const d = tmp();
  const input = await photo(join(d, 'a.png'), 5, 40, 36);
  const r = await inProcess(
    'purify',
    input,
    '--apply',
    'impress:3',
    '--model',
    model,
    '-o',
    join(d, 'imp.png'),
    '--json',
  );
  assert.equal(r.status, 0, r.stderr);
  const line = JSON.parse(r.stdout) as { spec: string; psnrDb: number; width: number; height: number };
  assert.equal(line.spec, 'impress:3');
  assert.deepEqual([line.width, line.height], [40, 36]);
  assert.ok(line.psnrDb > 30 && Number.isFinite(line.psnrDb), `PSNR to the input ${line.psnrDb}: changed, but little`);
  const noModel = await inProcess('purify', input, '--apply', 'impress', '-o', join(d, 'x.png'));
  assert.equal(noModel.status, 2);
  assert.match(noModel.stderr, /'impress' needs --model/);
  const stray = await inProcess('purify', input, '--apply', 'jpeg:75', '--model', model, '-o', join(d, 'y.png'));
  assert.equal(stray.status, 2);
  assert.match(stray.stderr, /--model is used only by 'impress'/);
  assert.ok(!existsSync(join(d, 'x.png')) && !existsSync(join(d, 'y.png')));
});

test('--help documents the spec grammar', async () => {
  const r = await inProcess('purify', '--help');
  assert.equal(r.status, 0);
  assertMentions(
    r.stdout,
    'jpeg:Q webp:Q blur:SIGMA median:K resize:S rotate:DEG hflip crop:F noise:gaussian mozjpeg 444 impress --model',
  );
});
