// `immunize protect --robust` (expectation over differentiable transforms) and `--check` (the
// purification suite run on the result), with TAEF2 on a small photo.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DEFAULT_CHECK_SUITE, checkSuiteCost, defaultCheckSuite } from '../../src/robustness/check.js';
import { parsePurification } from '../../src/purify/spec.js';
import sharp from 'sharp';
import { immunizeCli } from '../helpers/cli.js';
import { sharedPath, skipReason } from '../helpers/shared.js';

const immunize = immunizeCli();

async function setup(): Promise<{ dir: string; img: string; model: string } | null> {
  const model = sharedPath('models', 'taef2-hf');
  const src = sharedPath('images', 'trevor_5.jpg');
  if (model === null || src === null) return null;
  const dir = mkdtempSync(join(tmpdir(), 'immunize-robust-'));
  const img = join(dir, 'face.png');
  await sharp(src).resize(48, 48).png().toFile(img);
  return { dir, img, model };
}

/** `immunize protect` of the small photo, 6 steps, then `--check` with `suite`. */
function protectChecked(s: { img: string; model: string }, suite: string, out: string, ...more: string[]) {
  return immunize(
    'protect',
    s.img,
    '--model',
    s.model,
    '--steps',
    '6',
    '--check',
    '--check-suite',
    suite,
    '-o',
    out,
    ...more,
  );
}

interface CheckFile {
  none: { gapDb: number; cleanPsnr: number };
  rows: {
    purification: string;
    cleanPsnr: number;
    immunizedPsnr: number;
    gapDb: number;
    remaining: number;
    verdict: string;
  }[];
}

test('--robust jpeg: recorded in the parameters, changes the result, same seed same pixels', async (t) => {
  const s = await setup();
  if (s === null) return t.skip(skipReason('models', 'taef2-hf'));
  const run = (out: string, ...extra: string[]) =>
    // strong: a uniform 16/255 budget, the bound checked below (the default, balanced, follows texture).
    immunize(
      'protect',
      s.img,
      '--model',
      s.model,
      '--preset',
      'strong',
      '--steps',
      '4',
      '-o',
      join(s.dir, out),
      '--json',
      ...extra,
    );
  const plain = run('plain.png');
  assert.equal(plain.status, 0, plain.stderr);
  const robust = run('robust.png', '--robust', 'jpeg', '--robust-samples', '2');
  assert.equal(robust.status, 0, robust.stderr);
  const side = JSON.parse(robust.stdout) as {
    parameters: { robust?: { kind: string; samples: number } };
    results: { linf255: number };
    attack: { losses: number[] };
  };
  assert.deepEqual(side.parameters.robust, { kind: 'jpeg', samples: 2 });
  assert.equal((JSON.parse(plain.stdout) as { parameters: { robust?: unknown } }).parameters.robust, undefined);
  assert.ok(side.results.linf255 <= 16 + 1e-4);
  assert.ok(side.attack.losses.every(Number.isFinite));
  const [a, b] = await Promise.all([
    sharp(join(s.dir, 'plain.png')).raw().toBuffer(),
    sharp(join(s.dir, 'robust.png')).raw().toBuffer(),
  ]);
  assert.ok(!a.equals(b), 'optimising through JPEG gives another perturbation');
  assert.equal(run('robust2.png', '--robust', 'jpeg', '--robust-samples', '2').status, 0);
  assert.ok(b.equals(await sharp(join(s.dir, 'robust2.png')).raw().toBuffer()), 'deterministic for a seed');
});

test('--robust and --check refuse what they cannot do, with one line and no files', async (t) => {
  const s = await setup();
  if (s === null) return t.skip(skipReason('models', 'taef2-hf'));
  const cases: [string[], RegExp][] = [
    [['--robust', 'gif'], /--robust/],
    [['--robust-samples', '2'], /--robust-samples needs --robust/],
    [['--method', 'noise', '--robust', 'jpeg'], /--robust works with --method encoder/],
    [['--check-suite', 'jpeg:75'], /--check-suite needs --check/],
    [['--check', '--check-suite', 'jpeg:75,sepia'], /--check-suite: .*sepia/],
    [['--method', 'noise', '--check'], /needs --model/],
  ];
  for (const [args, message] of cases) {
    const out = join(s.dir, 'bad.png');
    const r = immunize(
      'protect',
      s.img,
      '--steps',
      '1',
      ...(args.includes('noise') && !args.includes('--robust') ? [] : ['--model', s.model]),
      ...args,
      '-o',
      out,
    );
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(!existsSync(out));
  }
});

test('--check writes NAME.immunized.check.json beside the result; a later --check on a done photo only checks', async (t) => {
  const s = await setup();
  if (s === null) return t.skip(skipReason('models', 'taef2-hf'));
  const out = join(s.dir, 'face.immunized.png');
  const checkFile = join(s.dir, 'face.immunized.check.json');
  const suite = 'jpeg:75,hflip,blur:1,none';
  const protectAndCheck = (...more: string[]) => protectChecked(s, suite, out, ...more);
  const r = protectAndCheck();
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /protection check/);
  const c = JSON.parse(readFileSync(checkFile, 'utf8')) as CheckFile;
  assert.deepEqual(
    c.rows.map((x) => x.purification),
    ['jpeg:75', 'hflip', 'blur:1', 'none'],
  );
  assert.ok(c.none.gapDb > 0, `immunization lowers the reconstruction PSNR (${c.none.gapDb} dB)`);
  for (const row of c.rows) {
    assert.ok(Number.isFinite(row.cleanPsnr) && Number.isFinite(row.immunizedPsnr), JSON.stringify(row));
    assert.ok(Math.abs(row.gapDb - (row.cleanPsnr - row.immunizedPsnr)) < 1e-9);
    assert.ok(['holds', 'weakened', 'removed'].includes(row.verdict));
  }
  // 'none' measures the same thing as the unpurified row: all of the protection is left.
  assert.ok(Math.abs(c.rows[3]!.remaining - 1) < 1e-9, `none: ${c.rows[3]!.remaining}`);

  const bytes = readFileSync(out);
  rmSync(checkFile);
  const again = protectAndCheck('--json');
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /running only --check/);
  assert.ok(readFileSync(out).equals(bytes), 'the immunized photo is not redone');
  const c2 = JSON.parse(readFileSync(checkFile, 'utf8')) as CheckFile;
  assert.deepEqual(
    c2.rows.map((x) => x.immunizedPsnr),
    c.rows.map((x) => x.immunizedPsnr),
  );
  assert.ok((JSON.parse(again.stdout) as { check?: unknown }).check !== undefined);
});

test('--check runs the adaptive purifier IMPRESS against the model: its row compares with the clean photo as it is', async (t) => {
  const s = await setup();
  if (s === null) return t.skip(skipReason('models', 'taef2-hf'));
  const out = join(s.dir, 'impress.immunized.png');
  const r = protectChecked(s, 'impress:3,none', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /impress:3/);
  assert.match(r.stdout, /impress: an adversary who knows the photo is protected/, 'the table says what the row means');
  const c = JSON.parse(readFileSync(join(s.dir, 'impress.immunized.check.json'), 'utf8')) as CheckFile & {
    none: { immunizedPsnr: number };
  };
  const [impressRow, noneRow] = c.rows;
  assert.equal(impressRow!.purification, 'impress:3');
  // The clean side is not purified: the same reconstruction PSNR as without purification...
  assert.equal(impressRow!.cleanPsnr, c.none.cleanPsnr);
  assert.equal(noneRow!.cleanPsnr, c.none.cleanPsnr);
  // ...while the protected photo was changed by the purifier (3 Adam steps towards consistency).
  assert.notEqual(impressRow!.immunizedPsnr, c.none.immunizedPsnr);
  assert.ok(Math.abs(impressRow!.gapDb - (impressRow!.cleanPsnr - impressRow!.immunizedPsnr)) < 1e-9);
});

test('the default --check suite ends with a bounded IMPRESS row', () => {
  const last = DEFAULT_CHECK_SUITE.at(-1)!;
  assert.match(last, /^impress:\d+$/);
  assert.ok(Number(last.split(':')[1]) <= 20, last);
});

test('the default suite shortens IMPRESS to fit a cost limit, and leaves it out only when one step does not fit', () => {
  const cost = (suite: string[]): number => checkSuiteCost(suite.map((x) => parsePurification(x)));
  assert.deepEqual(defaultCheckSuite(), [...DEFAULT_CHECK_SUITE]);
  const others = DEFAULT_CHECK_SUITE.length - 1;
  for (const limit of [1000, 40, 20, others + 3, others + 2]) {
    const suite = defaultCheckSuite(limit);
    assert.ok(cost(suite) <= limit, `${limit}: ${suite.join(',')} costs ${cost(suite)}`);
  }
  assert.equal(defaultCheckSuite(others + 3).at(-1), 'impress:1');
  assert.ok(!defaultCheckSuite(others + 2).some((x) => x.startsWith('impress')));
});
