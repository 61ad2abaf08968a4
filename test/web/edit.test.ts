// End-to-end: "Test the protection" against a real `immunize serve --edit-model` (the tiny img2img
// repository of the conformance cases), in Debian's Chromium through playwright-core. Immunize a
// small real photo with TAEF2, then edit the original and the immunized photo with the same prompt
// and seed from the page: progress, both edits side by side, PSNR/SSIM between them and a reading.
// Screenshots in test-output/web/ (desktop-7-edit-*, phone-5-edits).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { sharedPath } from '../helpers/shared.js';
import { OUT_DIR, missing } from './harness.js';
import { startServer } from './server.js';
import { shot, webSession } from './session.js';

// Callbacks given to page.evaluate/waitForFunction run in the browser; the repo's tsconfig has no DOM lib.
interface El {
  hidden: boolean;
  textContent: string | null;
  value: number;
  complete: boolean;
  naturalWidth: number;
  naturalHeight: number;
  disabled: boolean;
}
declare const document: { getElementById(id: string): El | null };

const IMG2IMG = sharedPath('golden', 'pipeline_img2img');
const why =
  missing() ?? (IMG2IMG === null ? 'the tiny img2img repository ../shared/golden/pipeline_img2img is missing' : null);

describe('web page: test the protection (edits) in Chromium', { skip: why ?? false, timeout: 600_000 }, () => {
  const web = webSession(() =>
    startServer(sharedPath('models', 'taef2-hf')!, [
      '--edit-model',
      `tiny-img2img=${IMG2IMG!}`,
      '--max-edit-steps',
      '8',
    ]),
  );

  async function immunize(width: number, height: number): Promise<{ page: Page; errors: string[] }> {
    const { page, errors } = await web.open(width, height, /favicon/);
    await page.setInputFiles('#file-input', web.photo);
    await page.waitForSelector('#mask-section:not([hidden])');
    await page.selectOption('#preset', 'fast');
    await page.click('details.field > summary');
    await page.fill('#steps', '4');
    await page.click('#immunize');
    await page.waitForSelector('#result-section:not([hidden])', { timeout: 300_000 });
    return { page, errors };
  }

  async function editBoth(page: Page, prompt: string, seed: number, steps: number): Promise<void> {
    await page.fill('#edit-prompt', prompt);
    await page.fill('#edit-seed', String(seed));
    await page.fill('#edit-steps', String(steps));
    await page.click('#edit-run');
    await page.waitForSelector('#edit-result:not([hidden])', { timeout: 300_000 });
    // Both edits loaded (through the read-token links) at the photo's size.
    await page.waitForFunction(() =>
      ['edit-original-img', 'edit-immunized-img'].every((id) => {
        const i = document.getElementById(id)!;
        return i.complete && i.naturalWidth > 0;
      }),
    );
  }

  it('edits the original and the immunized photo side by side, with PSNR/SSIM and a reading (desktop)', async () => {
    const { page, errors } = await immunize(1280, 900);
    assert.ok(
      await page.isEnabled('#edit-run'),
      'the server has an editing model: "Test the protection" must be enabled',
    );
    const note = (await page.textContent('#edit-note')) ?? '';
    assert.match(note, /same prompt and the same seed, using tiny-img2img/);
    // The conformance pipeline is test-sized: its edits are noise, and the page says so.
    assert.match(note, /tiny-img2img is a tiny test model\. .*its edits are noise/);
    // Why fewer steps run than asked: img2img runs steps × strength.
    assert.match((await page.textContent('#edit-steps-help')) ?? '', /strength 0\.5.*4 of 8/);
    await page.locator('#edit-section').scrollIntoViewIfNeeded();
    await shot(page, 'desktop-7-edit-ready');
    // Settings over the server's limits are refused in the browser, before anything is sent; the
    // progress bar stands still (not the moving "working" bar) and the form stays usable.
    const sent: string[] = [];
    page.on('request', (r) => {
      if (/\/edits/.test(r.url())) sent.push(r.url());
    });
    await page.fill('#edit-prompt', 'two men in a wedding');
    for (const [steps, said] of [
      ['50', /^This service runs at most 8 editing steps; you asked for 50\.$/],
      ['1', /^At strength 0\.5 the editor runs 1 × 0\.5 steps, rounded down: none at all; ask for at least 2\.$/],
    ] as const) {
      await page.fill('#edit-steps', steps);
      await page.click('#edit-run');
      assert.match((await page.textContent('#edit-status')) ?? '', said);
      assert.equal(await page.evaluate(`document.getElementById('edit-progress').matches(':indeterminate')`), false);
      assert.ok(await page.isEnabled('#edit-run'));
    }
    assert.deepEqual(sent, [], 'a refused setting was sent to the service');
    // A refusal from the service itself (a crafted 400) stops the bar as well.
    await page.route('**/v1/immunizations/*/edits', (route) =>
      route.fulfill({
        status: 400,
        contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'E_VALIDATION', message: 'not this prompt', field: 'prompt' } }),
      }),
    );
    await page.fill('#edit-steps', '4');
    await page.click('#edit-run');
    await page.waitForFunction(() =>
      /^The edit could not start: /.test(document.getElementById('edit-status')?.textContent ?? ''),
    );
    assert.equal(await page.evaluate(`document.getElementById('edit-progress').matches(':indeterminate')`), false);
    assert.ok(await page.isEnabled('#edit-run'));
    await page.unrouteAll();

    await editBoth(page, 'two men in a wedding', 9209, 4);
    const sizes = await page.evaluate(() =>
      ['edit-original-img', 'edit-immunized-img'].map((id) => {
        const i = document.getElementById(id)!;
        return [i.naturalWidth, i.naturalHeight];
      }),
    );
    assert.deepEqual(sizes, [
      [96, 64],
      [96, 64],
    ]);
    assert.match(
      (await page.textContent('#edit-status')) ?? '',
      /^Done: both photos edited with “two men in a wedding”, seed 9209, 2 steps each \(4 asked × strength 0\.5: the editor starts part-way, keeping the rest of the photo\)\./,
    );
    assert.equal(await page.evaluate(() => document.getElementById('edit-progress')!.value), 1);
    const metrics = (await page.textContent('#edit-metrics')) ?? '';
    assert.match(metrics, /PSNR between the two edits\s*(\d+\.\d dB|∞ dB)/);
    assert.match(metrics, /SSIM between the two edits\s*-?\d\.\d{3}/);
    assert.match(
      (await page.textContent('#edit-reading')) ?? '',
      /^The (two edits are nearly the same|edits differ noticeably|edits are very different)/,
    );
    await page.locator('#edit-section').scrollIntoViewIfNeeded();
    await shot(page, 'desktop-8-edits');
    await page.locator('#edit-section').screenshot({ path: join(OUT_DIR, 'desktop-8-edits-section.png') });
    assert.deepEqual(
      errors.filter((e) => !/status of 400/.test(e)),
      [],
    );
    await page.close();
  });

  it('shows the edits at phone width', async () => {
    const { page, errors } = await immunize(390, 844);
    await editBoth(page, 'a plane in the sky', 3, 2);
    await page.locator('#edit-section').scrollIntoViewIfNeeded();
    await page.locator('#edit-section').screenshot({ path: join(OUT_DIR, 'phone-5-edits.png') });
    assert.deepEqual(errors, []);
    await page.close();
  });
});
