// The `immunize` command as users run it: bin/immunize.js in a child process. Photos are tiny
// (made here with sharp, or a shared photo with --size 64) and attacks take a few steps.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import sharp from 'sharp';
import { assertMentions, IMMUNIZE_BIN, immunizeCli } from '../helpers/cli.js';
import { repoRoot, sharedPath, skipReason } from '../helpers/shared.js';
import { loadCommands } from '../../src/cli/main.js';
import { tempDir } from '../helpers/temp.js';

const photo = sharedPath('images', 'trevor_5.jpg');
const model = sharedPath('models', 'taef2-hf');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

const spawnImmunize = immunizeCli({ IMMUNIZE_QUIET: '1', HF_HUB_OFFLINE: '1', IMMUNIZE_DEBUG: '' });
function immunize(...args: string[]): Run {
  const r = spawnImmunize(...args);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tmp(): string {
  return tempDir('cli');
}

/** A w×h PNG/JPEG with a left half of one colour and a right half of another. */
async function twoTone(
  path: string,
  w: number,
  h: number,
  o: { orientation?: number; left?: [number, number, number]; right?: [number, number, number] } = {},
): Promise<void> {
  const [l, r] = [o.left ?? [220, 30, 30], o.right ?? [30, 30, 220]];
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(x < w / 2 ? l : r, (y * w + x) * 3);
  let img = sharp(data, { raw: { width: w, height: h, channels: 3 } });
  if (path.endsWith('.jpg')) img = img.jpeg({ quality: 95 });
  else img = img.png();
  if (o.orientation !== undefined) img = img.withMetadata({ orientation: o.orientation });
  await img.toFile(path);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A PNG whose header claims w×h pixels but holds almost no data: a decompression bomb's shape. */
function hugePngHeader(path: string, w: number, h: number): void {
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  writeFileSync(
    path,
    Buffer.concat([
      Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
      chunk('IHDR', ihdr),
      chunk('IDAT', Buffer.alloc(0)),
      chunk('IEND', Buffer.alloc(0)),
    ]),
  );
}

function lines(s: string): string[] {
  return s.split('\n').filter((l) => l.trim() !== '');
}

/** Exit code, exactly one line on stderr naming what is wrong, no stack trace, nothing written. */
function assertOneLineFailure(r: Run, pattern: RegExp, outDir: string, what: string): void {
  assert.notEqual(r.status, 0, `${what}: exit code`);
  assert.equal(r.status !== null && r.status > 0, true, `${what}: a normal exit, not a signal`);
  const l = lines(r.stderr);
  assert.equal(l.length, 1, `${what}: one line on stderr, got:\n${r.stderr}`);
  assert.match(l[0]!, pattern, what);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
  assert.equal(r.stdout, '', `${what}: nothing on stdout`);
  assert.ok(
    !existsSync(outDir) || readdirSync(outDir).length === 0,
    `${what}: files left in ${outDir}: ${existsSync(outDir) ? readdirSync(outDir).join(', ') : ''}`,
  );
}

interface Sidecar {
  input: { width: number; height: number; orientation: number; resizedTo: [number, number] | null };
  output: { path: string; sidecar: string; width: number; height: number; format: string };
  parameters: Record<string, unknown> & { eps: number; seed: number; inputSha256: string };
  attack: {
    losses: number[];
    finalLoss: number;
    stepsTaken: number;
    stepSizes: number[];
    paddedTo: [number, number] | null;
  } | null;
  results: {
    linf: number;
    l2: number;
    psnr: number;
    ssim: number | null;
    reconstruction: { cleanPsnr: number; immunizedPsnr: number; immunizedVsOriginalPsnr: number } | null;
  };
  timing: { totalMs: number; attackMs: number };
  environment: { device: string; threads: number };
  skipped?: boolean;
}

describe('immunize', () => {
  test('--help lists the commands and exits 0; no command prints usage and exits 2', () => {
    const h = immunize('--help');
    assert.equal(h.status, 0);
    assert.match(h.stdout, /Usage: immunize <command>/);
    for (const c of ['protect', 'inspect', 'info']) assert.match(h.stdout, new RegExp(`\\n  ${c} `));
    assert.equal(immunize().status, 2);
  });

  test("the help lists every command with its module's own summary", async () => {
    const h = immunize('--help');
    const modules = await loadCommands();
    assert.ok(Object.keys(modules).length >= 8);
    for (const [name, c] of Object.entries(modules)) {
      assert.ok(h.stdout.includes(`  ${name.padEnd(8)}  ${c.summary}`), `${name}: '${c.summary}' in\n${h.stdout}`);
    }
  });

  test('--version prints package.json version', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(immunize('--version').stdout.trim(), pkg.version);
  });

  test('an unknown command is named, exit 2', () => {
    const r = immunize('frobnicate');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
    // Commands load by module name: names of Object's own members are not commands either.
    for (const name of ['constructor', '__proto__', 'toString', 'args']) {
      const o = immunize(name);
      assert.equal(o.status, 2, name);
      assert.match(o.stderr, new RegExp(`unknown command '${name}'`));
    }
  });

  test('info reports libtorch, threads and devices', () => {
    const r = immunize('info', '--json');
    assert.equal(r.status, 0, r.stderr);
    const info = JSON.parse(r.stdout) as { libtorch: string; threads: number; cuda: boolean };
    assert.match(info.libtorch, /^\d+\.\d+/);
    assert.ok(info.threads >= 1);
    assert.equal(typeof info.cuda, 'boolean');
  });

  test('protect --help documents the options', () => {
    const r = immunize('protect', '--help');
    assert.equal(r.status, 0);
    assertMentions(
      r.stdout,
      '--threads --max-pixels --force --size --tile --mask --preset subtle balanced strong default paper fast --min-ssim --budget',
    );
  });
});

describe('protect: bad input → non-zero exit, one line, no files left', () => {
  test('each bad input', async (t) => {
    const dir = tmp();
    const out = join(dir, 'out');
    const good = join(dir, 'good.png');
    await twoTone(good, 40, 24);
    const notImage = join(dir, 'notes.png');
    copyFileSync(IMMUNIZE_BIN, notImage);
    const empty = join(dir, 'empty.png');
    writeFileSync(empty, '');
    const huge = join(dir, 'huge.png');
    hugePngHeader(huge, 9000, 9000); // 81 MP, over the 40 MP default
    const bomb = join(dir, 'bomb.png');
    hugePngHeader(bomb, 60000, 60000);
    const mask = join(dir, 'mask.png');
    await twoTone(mask, 20, 12);
    const emptyDir = join(dir, 'nothing');
    mkdirSync(emptyDir);
    writeFileSync(join(emptyDir, 'readme.txt'), 'hi');

    const cases: [string, string[], RegExp][] = [
      ['missing file', [join(dir, 'nope.jpg')], /input image not found: .*nope\.jpg/],
      ['not an image', [notImage, '--method', 'noise'], /notes\.png: not a readable image/],
      ['zero-size file', [empty, '--method', 'noise'], /empty\.png: the file is empty \(0 bytes\)/],
      [
        'over --max-pixels (default 40 MP)',
        [huge, '--method', 'noise'],
        /huge\.png: 9000×9000 = 81\.0 MP is over the limit of 40\.0 MP \(--max-pixels\)/,
      ],
      [
        'a small --max-pixels',
        [good, '--method', 'noise', '--max-pixels', '500'],
        /good\.png: 40×24 = 960 pixels is over the limit of 500 pixels/,
      ],
      [
        'a decompression bomb',
        [bomb, '--method', 'noise', '--size', '64'],
        /bomb\.png: 60000×60000 .* more than can be decoded safely/,
      ],
      [
        'mask of another size',
        [good, '--method', 'noise', '--mask', mask],
        /mask .*mask\.png is 20×12 but the photo .*good\.png is 40×24/,
      ],
      ['eps 0', [good, '--eps', '0'], /--eps: must be greater than 0 and at most 1/],
      ['eps negative', [good, '--eps=-1/255'], /--eps: must be greater than 0/],
      ['eps above 1', [good, '--eps', '1.5'], /--eps: .*at most 1.*1\.5/],
      ['eps not a number', [good, '--eps', 'lots'], /--eps: expected a number or a fraction/],
      [
        'min-ssim above 1',
        [good, '--min-ssim', '1.5'],
        /--min-ssim: must be at least 0 and at most 0\.999 but received 1\.5/,
      ],
      ['min-ssim not a number', [good, '--min-ssim', 'high'], /--min-ssim: expected a number/],
      [
        'min-ssim with noise',
        [good, '--method', 'noise', '--min-ssim', '0.9'],
        /--min-ssim works with --method encoder/,
      ],
      ['unknown budget', [good, '--budget', 'wavy'], /--budget: expected one of uniform, texture but received 'wavy'/],
      ['unknown model (path)', [good, '--model', join(dir, 'no-model')], /model not found: .*no-model/],
      ['unknown model (repo id, offline)', [good, '--model', 'nobody/no-such-model'], /nobody\/no-such-model/],
      ['diffusion method without a mask', [good, '--method', 'diffusion'], /--method diffusion needs --mask/],
      ['unknown option', [good, '--frobnicate'], /Unknown option '--frobnicate'/],
      ['folder without images', [emptyDir], /nothing: the folder has no images/],
      ['glob matching nothing', [join(dir, '*.webp')], /no files match/],
    ];
    for (const [what, args, re] of cases) {
      await t.test(what, () => assertOneLineFailure(immunize('protect', ...args, '-o', `${out}/`), re, out, what));
    }
    // Usage errors exit 2, bad images 1 (so scripts can tell them apart).
    assert.equal(immunize('protect', good, '--eps', '0', '-o', `${out}/`).status, 2);
    assert.equal(immunize('protect', notImage, '--method', 'noise', '-o', `${out}/`).status, 1);
    assert.ok(!existsSync(out));
  });

  test('refuses to overwrite the input photo', async () => {
    const dir = tmp();
    const p = join(dir, 'a.png');
    await twoTone(p, 16, 16);
    const before = readFileSync(p);
    const r = immunize('protect', p, '--method', 'noise', '-o', p);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /refusing to overwrite an input photo/);
    assert.deepEqual(readFileSync(p), before);
  });

  test('in a batch, a bad photo fails alone: the others are written, exit 1, nothing for the bad one', async () => {
    const dir = tmp();
    await twoTone(join(dir, 'a.png'), 16, 16);
    writeFileSync(join(dir, 'b.png'), 'not a png');
    await twoTone(join(dir, 'c.jpg'), 16, 16);
    const out = join(dir, 'out');
    const r = immunize('protect', dir, '--method', 'noise', '-o', out);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /b\.png: not a readable image/);
    assert.match(r.stderr, /2 immunized, 0 skipped \(already done\), 1 failed/);
    assert.deepEqual(readdirSync(out).sort(), [
      'a.immunized.json',
      'a.immunized.png',
      'c.immunized.json',
      'c.immunized.png',
    ]);
  });
});

describe('protect: outputs', () => {
  test('--method noise writes a PNG within the budget and a complete sidecar', async () => {
    const dir = tmp();
    const src = join(dir, 'cat.png');
    await twoTone(src, 40, 24);
    const out = join(dir, 'protected.png');
    const r = immunize('protect', src, '--method', 'noise', '--eps', '8/255', '--seed', '3', '-o', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout) as Sidecar;
    assert.equal(res.output.path, out);
    assert.equal(res.output.sidecar, join(dir, 'protected.json'));
    assert.deepEqual(JSON.parse(readFileSync(res.output.sidecar, 'utf8')), res, 'stdout is the sidecar');
    assert.ok(res.results.linf <= 8 / 255 + 1e-6 && res.results.linf > 0, `L∞ ${res.results.linf}`);
    assert.ok(res.results.l2 > 0 && res.results.psnr > 30 && res.results.ssim! > 0.5 && res.results.ssim! < 1);
    assert.equal(res.parameters.eps, 8 / 255);
    assert.equal(res.parameters.seed, 3);
    assert.match(res.parameters.inputSha256, /^[0-9a-f]{64}$/);
    assert.equal(res.attack, null);
    assert.equal((await sharp(out).metadata()).format, 'png');
  });

  test('encoder attack with TAEF2: losses, reconstruction PSNR, timing, threads, XMP label read back by inspect', async (t) => {
    if (photo === null || model === null) return t.skip(skipReason('models', 'taef2-hf'));
    const dir = tmp();
    const r = immunize(
      'protect',
      photo,
      '--model',
      model,
      '--size',
      '64',
      '--steps',
      '5',
      '--preset',
      'fast',
      '--threads',
      '1',
      '-o',
      dir,
      '--json',
    );
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout) as Sidecar;
    const a = res.attack!;
    assert.equal(a.stepsTaken, 5);
    assert.equal(a.losses.length, 5, 'every loss is recorded');
    assert.ok(a.finalLoss < a.losses[0]!, `loss ${a.losses[0]} → ${a.finalLoss}`);
    assert.deepEqual(
      a.stepSizes,
      [2, 2, 2, 2, 2].map((v) => v / 255),
      'fast: constant steps',
    );
    assert.ok(res.results.linf <= 16 / 255 + 1e-6);
    const rec = res.results.reconstruction!;
    assert.ok(rec.cleanPsnr > 15 && rec.cleanPsnr < 60, `clean reconstruction ${rec.cleanPsnr}`);
    assert.ok(Number.isFinite(rec.immunizedPsnr) && Number.isFinite(rec.immunizedVsOriginalPsnr));
    assert.ok(res.timing.totalMs >= res.timing.attackMs && res.timing.attackMs > 0);
    assert.equal(res.environment.threads, 1);
    assert.equal(res.environment.device, 'cpu');
    assert.deepEqual(res.input.resizedTo, [64, 63], '--size keeps the aspect ratio (1170×1152)');
    assert.deepEqual([res.output.width, res.output.height], [64, 63]);
    assert.deepEqual(a.paddedTo, [64, 64]);

    const human = immunize('inspect', res.output.path);
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /: immunized\n/);
    assert.match(human.stdout, /method\s+encoder attack/);
    assert.match(human.stdout, /budget\s+ε = 16\/255/);
    assert.match(human.stdout, /model\s+taef2-hf/);
    assert.match(human.stdout, /steps\s+5 of 5/);
    const json = immunize('inspect', res.output.path, '--json');
    assert.equal(json.status, 0);
    const j = JSON.parse(json.stdout) as { immunized: boolean; marker: Record<string, unknown> };
    assert.equal(j.immunized, true);
    assert.equal(j.marker['method'], 'encoder');
    assert.equal(j.marker['eps'], 16 / 255);
    assert.equal(j.marker['steps'], 5);
    assert.equal(j.marker['preset'], 'fast');
    assert.equal(j.marker['model'], 'taef2-hf', 'no local folders in published metadata');
    assert.match(String(j.marker['date']), /^\d{4}-\d\d-\d\dT/);
    assert.equal(typeof j.marker['toolVersion'], 'string');
  });

  test('the default (balanced): a time estimate before, visibility and protection side by side after; --preset default says it is deprecated', async (t) => {
    if (photo === null || model === null) return t.skip(skipReason('models', 'taef2-hf'));
    const dir = tmp();
    const times = join(dir, 'step-times.json');
    const run = (...more: string[]) =>
      immunizeCli({ IMMUNIZE_QUIET: '1', HF_HUB_OFFLINE: '1', IMMUNIZE_STEP_TIMES: times })(
        'protect',
        photo,
        '--model',
        model,
        '--size',
        '64',
        '--steps',
        '3',
        '--threads',
        '1',
        '--force',
        '-o',
        join(dir, 'out.png'),
        ...more,
      );
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stderr, /trevor_5\.jpg: no time estimate yet/);
    assert.match(first.stdout, /visibility: SSIM (0\.9\d\d|1\.000) to the original \(target ≥ 0\.9, met\)/);
    assert.match(first.stdout, /protection: reconstruction \d+\.\d → \d+\.\d dB, a gap of -?\d+\.\d dB/);
    assert.ok(existsSync(times), 'the step time was recorded');
    const side = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as Sidecar;
    assert.equal(side.parameters.preset, 'balanced');
    assert.ok(side.results.ssim! >= 0.9, `SSIM ${side.results.ssim}`);

    const second = run('--preset', 'default');
    assert.equal(second.status, 0, second.stderr);
    assert.match(
      second.stderr,
      /trevor_5\.jpg: estimate: about \d+ s for at most 3 steps .* 1 job measured on this machine/,
    );
    assert.match(second.stderr, /note: preset 'default' is now called 'strong' .*deprecated/);
    assert.equal((JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as Sidecar).parameters.preset, 'strong');
  });

  test('a photo is protected at its own size and aspect ratio (padded for the model, cropped back)', async (t) => {
    if (model === null) return t.skip(skipReason('models', 'taef2-hf'));
    const dir = tmp();
    const src = join(dir, 'odd.png');
    await twoTone(src, 50, 30);
    const r = immunize('protect', src, '--model', model, '--steps', '2', '--json');
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout) as Sidecar;
    assert.equal(res.output.path, join(dir, 'odd.immunized.png'), 'default output next to the input, PNG');
    const m = await sharp(res.output.path).metadata();
    assert.deepEqual([m.width, m.height, m.format], [50, 30, 'png']);
    assert.deepEqual(res.attack!.paddedTo, [56, 32]);
    assert.equal(res.input.resizedTo, null);
    assert.match(r.stderr, /50×30 is not a multiple of 8; padded to 56×32/);
  });

  test('EXIF orientation is honoured: a JPEG stored 32×16 with orientation 6 is protected upright, 16×32', async () => {
    const dir = tmp();
    const src = join(dir, 'rotated.jpg');
    await twoTone(src, 32, 16, { orientation: 6 }); // stored: red left, blue right
    const stored = await sharp(src).metadata();
    assert.deepEqual([stored.width, stored.height, stored.orientation], [32, 16, 6]);
    const r = immunize('protect', src, '--method', 'noise', '--eps', '2/255', '--json');
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout) as Sidecar;
    assert.equal(res.input.orientation, 6);
    const { data, info } = await sharp(res.output.path).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], [16, 32], 'displayed size');
    assert.equal(
      (await sharp(res.output.path).metadata()).orientation,
      undefined,
      'pixels are upright; no orientation tag left to apply twice',
    );
    // Orientation 6 = rotate 90° clockwise to display: the stored left (red) half becomes the top.
    const px = (x: number, y: number): number[] => [...data.subarray((y * 16 + x) * 3, (y * 16 + x) * 3 + 3)];
    const top = px(8, 4),
      bottom = px(8, 28);
    assert.ok(top[0]! > 150 && top[2]! < 100, `top is red: ${top.join(',')}`);
    assert.ok(bottom[2]! > 150 && bottom[0]! < 100, `bottom is blue: ${bottom.join(',')}`);
  });

  test('--mask: pixels change only where the mask is white, bit for bit the original elsewhere; --invert-mask flips it', async () => {
    const dir = tmp();
    const src = join(dir, 'p.png');
    await twoTone(src, 32, 16, { left: [120, 120, 120], right: [120, 120, 120] });
    const mask = join(dir, 'm.png');
    await twoTone(mask, 32, 16, { left: [255, 255, 255], right: [0, 0, 0] }); // white left
    const original = await sharp(src).raw().toBuffer();
    for (const [invert, changedSide] of [
      [false, 'left'],
      [true, 'right'],
    ] as const) {
      const out = join(dir, `out-${invert}.png`);
      const r = immunize(
        'protect',
        src,
        '--method',
        'noise',
        '--mask',
        mask,
        ...(invert ? ['--invert-mask'] : []),
        '-o',
        out,
      );
      assert.equal(r.status, 0, r.stderr);
      const got = await sharp(out).raw().toBuffer();
      let changedLeft = 0,
        changedRight = 0;
      for (let i = 0; i < got.length; i++) {
        if (got[i] === original[i]) continue;
        if (Math.floor(i / 3) % 32 < 16) changedLeft++;
        else changedRight++;
      }
      if (changedSide === 'left')
        assert.ok(changedLeft > 500 && changedRight === 0, `mask: ${changedLeft} left, ${changedRight} right changed`);
      else
        assert.ok(
          changedRight > 500 && changedLeft === 0,
          `inverted: ${changedLeft} left, ${changedRight} right changed`,
        );
    }
  });

  test('-o .jpg: a warning that explains why, then the JPEG is written (and labelled)', async () => {
    const dir = tmp();
    const src = join(dir, 'p.png');
    await twoTone(src, 32, 32);
    const out = join(dir, 'p.jpg');
    const r = immunize('protect', src, '--method', 'noise', '-o', out);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      /warning: writing JPEG as asked \(p\.jpg\), but lossy re-compression weakens the protection.*Use \.png/,
    );
    assert.equal((await sharp(out).metadata()).format, 'jpeg');
    assert.ok(existsSync(join(dir, 'p.json')));
    assert.equal(immunize('inspect', out).status, 0, 'the label survives in JPEG (APP1 XMP)');
    // PNG by default: no warning.
    const png = immunize('protect', src, '--method', 'noise', '-o', join(dir, 'q.png'));
    assert.doesNotMatch(png.stderr, /warning/);
  });

  test('inspect: an image without the label says so and exits 1; a non-image is one error line', async () => {
    const dir = tmp();
    const src = join(dir, 'plain.png');
    await twoTone(src, 8, 8);
    const r = immunize('inspect', src);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /plain\.png: no immunize label/);
    const j = immunize('inspect', src, '--json');
    assert.equal(j.status, 1);
    assert.equal((JSON.parse(j.stdout) as { immunized: boolean }).immunized, false);
    writeFileSync(join(dir, 'x.png'), 'text');
    const bad = immunize('inspect', join(dir, 'x.png'));
    assert.equal(bad.status, 1);
    assert.equal(lines(bad.stderr).length, 1);
    assert.match(bad.stderr, /not a readable image/);
  });
});

describe('protect: folders, globs, resumable batches', () => {
  test('a folder contributes its images; non-images and earlier outputs are skipped with a note', async () => {
    const dir = tmp();
    const album = join(dir, 'album');
    mkdirSync(album);
    await twoTone(join(album, 'a.png'), 16, 16);
    await twoTone(join(album, 'b.jpg'), 16, 16);
    writeFileSync(join(album, 'notes.txt'), 'hello');
    await twoTone(join(album, 'old.immunized.png'), 16, 16);
    const out = join(dir, 'out');
    const r = immunize('protect', album, '--method', 'noise', '-o', out);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /note: .*album: skipped 1 non-image file \(notes\.txt\) and 1 earlier immunize output/);
    assert.deepEqual(readdirSync(out).sort(), [
      'a.immunized.json',
      'a.immunized.png',
      'b.immunized.json',
      'b.immunized.png',
    ]);
  });

  test('a quoted glob is expanded (only what matches)', async () => {
    const dir = tmp();
    for (const n of ['x1.png', 'x2.png', 'y.png']) await twoTone(join(dir, n), 16, 16);
    const out = join(dir, 'out');
    const r = immunize('protect', join(dir, 'x?.png'), '--method', 'noise', '-o', out);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(
      readdirSync(out)
        .filter((f) => f.endsWith('.png'))
        .sort(),
      ['x1.immunized.png', 'x2.immunized.png'],
    );
  });

  test('a second run skips photos done with the same parameters; other parameters or --force redo them', async () => {
    const dir = tmp();
    const src = join(dir, 'a.png');
    await twoTone(src, 16, 16);
    const out = join(dir, 'a.immunized.png');
    const first = immunize('protect', src, '--method', 'noise', '--seed', '1', '--json');
    assert.equal(first.status, 0, first.stderr);
    const t1 = statSync(out).mtimeMs;
    const sidecar1 = readFileSync(join(dir, 'a.immunized.json'), 'utf8');

    const again = immunize('protect', src, '--method', 'noise', '--seed', '1');
    assert.equal(again.status, 0);
    assert.match(again.stderr, /skip .*a\.png: already immunized with the same parameters/);
    assert.equal(again.stdout, '');
    assert.equal(statSync(out).mtimeMs, t1, 'not rewritten');
    assert.equal(readFileSync(join(dir, 'a.immunized.json'), 'utf8'), sidecar1);
    const againJson = immunize('protect', src, '--method', 'noise', '--seed', '1', '--json');
    assert.equal((JSON.parse(againJson.stdout) as Sidecar).skipped, true);

    const other = immunize('protect', src, '--method', 'noise', '--seed', '2', '--json');
    assert.equal(other.status, 0);
    assert.equal((JSON.parse(other.stdout) as Sidecar).parameters.seed, 2, 'another seed: redone');
    assert.doesNotMatch(other.stderr, /skip/);

    const forced = immunize('protect', src, '--method', 'noise', '--seed', '2', '--force');
    assert.equal(forced.status, 0);
    assert.doesNotMatch(forced.stderr, /skip/);
    assert.match(forced.stdout, /a\.png → /);

    // A changed photo is not "done" either (its hash is a parameter).
    await twoTone(src, 16, 16, { left: [0, 200, 0] });
    const changed = immunize('protect', src, '--method', 'noise', '--seed', '2');
    assert.doesNotMatch(changed.stderr, /skip/);
  });
});
