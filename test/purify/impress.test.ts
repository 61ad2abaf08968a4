// The IMPRESS-style adaptive purifier (src/purify/impress.ts): on TAEF2 at 32² (real weights from
// ../shared/models) an immunized photo is made consistent again — the reconstruction error drops —
// while the result stays close to the protected image; the options on a toy autoencoder.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pgd } from '../../src/attacks/pgd.js';
import { readImage } from '../../src/io/images.js';
import { ssim } from '../../src/metrics/ssim.js';
import { loadAutoencoderFromPath } from '../../src/models/load.js';
import { asAutoencoder, impress, reconstructionError, type ImageAutoencoder } from '../../src/purify/impress.js';
import { F, full, Generator, noGrad, rand, scope, type Tensor } from '../../src/torch/index.js';
import { sharedPath, skipReason } from '../helpers/shared.js';

const maxDiff = (a: Tensor, b: Tensor): number => noGrad(() => scope(() => a.sub(b).abs().max().item()));
const psnr = (a: Tensor, b: Tensor): number =>
  noGrad(() => scope(() => 10 * Math.log10(1 / a.sub(b).square().mean().item())));

/** A toy autoencoder that keeps only the 2×2 means: its reconstruction error is the image's fine detail. */
const blocky: ImageAutoencoder = {
  name: 'blocky',
  encode01: (x) => F.avgPool2d(x, 2),
  decode01: (z) => F.interpolate(z, { scaleFactor: 2, mode: 'nearest' }),
};

describe('impress on TAEF2', () => {
  test('an immunized photo: reconstruction error drops below the protected one, closeness holds', async (t) => {
    const weights = sharedPath('models', 'taef2-hf');
    const photo = sharedPath('images', 'chelsea.png');
    if (weights === null || photo === null) return t.skip(skipReason('models', 'taef2-hf'));
    const ae = asAutoencoder(loadAutoencoderFromPath(weights));
    const { tensor: x } = await readImage(photo, { width: 32, height: 32 });
    // Immunize first (photoguard's encoder attack towards E(gray), ε 16/255, a few steps).
    const target = noGrad(() => ae.encode01(full([1, 3, 32, 32], 0.5)));
    const prot = pgd(x, (xa) => ae.encode01(xa).sub(target).square().mean(), {
      eps: 16 / 255,
      stepSize: 4 / 255,
      steps: 8,
    }).adv;
    const clean = reconstructionError(ae, x);
    const protectedErr = reconstructionError(ae, prot);
    assert.ok(
      protectedErr > clean * 1.2,
      `the attack should make reconstruction worse: clean ${clean}, protected ${protectedErr}`,
    );

    const r = impress(ae, prot, { steps: 12, stepSize: 0.005, eps: 8 / 255 });
    t.diagnostic(
      `TAEF2 32²: reconstruction MSE clean ${clean.toExponential(3)}, protected ${r.reconstructionBefore.toExponential(3)}, purified ${r.reconstructionAfter.toExponential(3)}; PSNR(purified, protected) ${psnr(r.purified, prot).toFixed(2)} dB`,
    );
    assert.equal(r.reconstructionBefore, protectedErr);
    assert.ok(
      r.reconstructionAfter < 0.8 * r.reconstructionBefore,
      `reconstruction error ${r.reconstructionBefore} → ${r.reconstructionAfter}`,
    );
    assert.ok(r.losses.at(-1)! < r.losses[0]!, `loss ${r.losses[0]} → ${r.losses.at(-1)}`);
    // Closeness: inside the L∞ bound and the pixel range, visually the same image.
    assert.ok(maxDiff(r.purified, prot) <= 8 / 255 + 1e-6);
    assert.ok(noGrad(() => r.purified.min().item() >= 0 && r.purified.max().item() <= 1));
    assert.ok(psnr(r.purified, prot) > 33, `PSNR(purified, protected) ${psnr(r.purified, prot)}`);
    assert.ok(r.distance < 1e-3, `mean squared distance ${r.distance}`);
    assert.equal(r.stepsTaken, 12);
  });
});

describe('impress options (toy autoencoder)', () => {
  const x = noGrad(() =>
    rand([1, 3, 16, 16], { generator: new Generator({ seed: 1 }) })
      .mul(0.6)
      .add(0.2),
  );

  for (const closeness of ['l2', 'ssim'] as const) {
    test(`${closeness}: fine detail goes, the image stays close; a larger weight keeps it closer`, () => {
      const loose = impress(blocky, x, { closeness, steps: 30, stepSize: 0.01, weight: closeness === 'l2' ? 1 : 0.1 });
      const tight = impress(blocky, x, { closeness, steps: 30, stepSize: 0.01, weight: closeness === 'l2' ? 100 : 10 });
      assert.ok(
        loose.reconstructionAfter < 0.5 * loose.reconstructionBefore,
        `${loose.reconstructionBefore} → ${loose.reconstructionAfter}`,
      );
      assert.ok(
        tight.distance < loose.distance,
        `distance with the larger weight ${tight.distance} vs ${loose.distance}`,
      );
      assert.ok(tight.reconstructionAfter > loose.reconstructionAfter);
      if (closeness === 'ssim') {
        const s = noGrad(() => ssim(tight.purified, x, { dataRange: 1, reduction: 'mean' }).item());
        assert.ok(Math.abs(1 - s - tight.distance) < 1e-5, 'distance is 1 − SSIM');
      }
    });
  }

  test('the margin lets the distance grow up to Δ for free; eps bounds every pixel', () => {
    const free = impress(blocky, x, { steps: 30, stepSize: 0.003, weight: 1000, margin: 1e-3 });
    const strict = impress(blocky, x, { steps: 30, stepSize: 0.003, weight: 1000 });
    assert.ok(
      free.reconstructionAfter < 0.9 * strict.reconstructionAfter,
      `with margin ${free.reconstructionAfter}, without ${strict.reconstructionAfter}`,
    );
    assert.ok(
      free.distance > 100 * strict.distance && free.distance <= 1e-3 * 1.2,
      `distance with margin ${free.distance}, without ${strict.distance}`,
    );
    const bounded = impress(blocky, x, { steps: 30, stepSize: 0.01, eps: 2 / 255, weight: 0 });
    assert.ok(maxDiff(bounded.purified, x) <= 2 / 255 + 1e-6);
  });

  test("'lpips' runs with a supplied distance and is refused without one; bad options", () => {
    let calls = 0;
    const r = impress(blocky, x, {
      closeness: 'lpips',
      steps: 3,
      lpips: (a, b) => {
        calls++;
        return a.sub(b).abs().mean();
      },
    });
    assert.ok(calls >= 3);
    assert.ok(r.distance >= 0);
    assert.throws(
      () => impress(blocky, x, { closeness: 'lpips' }),
      (e: Error & { code?: string }) => e.code === 'E_NOT_AVAILABLE' && /LPIPS/.test(e.message),
    );
    assert.throws(() => impress(blocky, x, { closeness: 'psnr' as 'l2' }), /closeness/);
    assert.throws(() => impress(blocky, x, { steps: -1 }), /steps/);
    assert.throws(() => impress({} as ImageAutoencoder, x), /encode01/);
  });
});
