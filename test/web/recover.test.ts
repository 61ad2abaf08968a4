// The page finds its job again (issue 14, point 10), in Debian's Chromium against a real
// `immunize serve`: after a reload mid-job, and after the server is killed with SIGKILL mid-job and
// restarted on the same storage and port — the restarted server finishes the job it had accepted,
// and the page, which kept retrying and said so, shows the result without a reload.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { sharedPath } from '../helpers/shared.js';
import { missing } from './harness.js';
import { startServer, type TestServer } from './server.js';
import { progressTexts, recordProgressTexts, shot, webSession } from './session.js';

// Callbacks given to page.evaluate/waitForFunction run in the browser; the repo's tsconfig has no DOM lib.
interface El {
  hidden: boolean;
  textContent: string | null;
  complete: boolean;
  naturalWidth: number;
}
declare const document: { getElementById(id: string): El | null };
declare const window: { notReloaded?: boolean };
declare const location: { hash: string };

const why = missing();
const MODEL = sharedPath('models', 'taef2-hf');
// Long enough that the job is still running when the test acts on it; each run ends by itself.
const STEPS = 300;

describe(
  'web page: a job survives a reload and a server restart (Chromium)',
  { skip: why ?? false, timeout: 900_000 },
  () => {
    const web = webSession(() => startServer(MODEL!), { acceptDownloads: true });

    async function startLongJob(page: Page): Promise<void> {
      await page.setInputFiles('#file-input', web.photo);
      await page.waitForSelector('#mask-section:not([hidden])');
      await page.selectOption('#preset', 'fast');
      await page.click('details.field > summary');
      await page.fill('#steps', String(STEPS));
      await page.click('#immunize');
      await page.waitForFunction(
        (n) => new RegExp(`Step [1-9]\\d* of ${n}`).test(document.getElementById('progress-text')?.textContent ?? ''),
        STEPS,
        { timeout: 300_000 },
      );
    }

    async function resultShown(page: Page): Promise<void> {
      await page.waitForSelector('#result-section:not([hidden])', { timeout: 600_000 });
      await page.waitForFunction(() => {
        const i = document.getElementById('result-img')!;
        return i.complete && i.naturalWidth > 0;
      });
      assert.match((await page.textContent('#progress-text')) ?? '', new RegExp(`^Done: ${STEPS} steps`));
    }

    it('a reload mid-job finds the job again from the address and shows its result', async () => {
      const { page, errors } = await web.open(1280, 900, /favicon/);
      await startLongJob(page);
      assert.match(await page.evaluate(() => location.hash), /^#job=[^&]+&token=/);
      await page.reload();
      await page.waitForFunction(() =>
        /Step \d+ of|Done/.test(document.getElementById('progress-text')?.textContent ?? ''),
      );
      await resultShown(page);
      // The photo's name survived the reload with the job (localStorage).
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      assert.equal(download.suggestedFilename(), 'photo-96.immunized.png');
      await shot(page, 'desktop-9-recovered-after-reload');
      assert.deepEqual(errors, []);

      // A reload while the service answers 503 (restarting) waits and asks again, saying so.
      const id = decodeURIComponent(/#job=([^&]+)/.exec(await page.evaluate(() => location.hash))![1]!);
      let refused = 0;
      await page.route(new RegExp(`/v1/immunizations/${id}\\?`), (route) =>
        ++refused <= 2
          ? route.fulfill({
              status: 503,
              contentType: 'application/json',
              body: '{"error":{"code":"E_UNAVAILABLE","message":"restarting"}}',
            })
          : route.fallback(),
      );
      await page.reload();
      await page.waitForFunction(() =>
        /^Cannot reach the service to find your job; trying again in \d+ seconds?…$/.test(
          document.getElementById('progress-text')?.textContent ?? '',
        ),
      );
      await resultShown(page);
      assert.equal(refused, 3);
      await page.unrouteAll();

      // A job the service no longer has: said plainly, and the address forgets it.
      await page.goto(`${web.server.url}/#job=${'0'.repeat(32)}&token=x`);
      await page.reload();
      await page.waitForSelector('#alert:not([hidden])');
      assert.match((await page.textContent('#alert')) ?? '', /The job in this page’s address is gone/);
      assert.equal(await page.evaluate(() => location.hash), '');
      await page.close();
    });

    it('kill -9 of the server mid-job, then a restart on the same storage and port: the result appears without a reload', async () => {
      // Connection errors while the server is down are expected in the console.
      const { page, errors } = await web.open(1280, 900, /favicon|ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|net::ERR/);
      await startLongJob(page);
      await page.evaluate(() => {
        window.notReloaded = true;
      });
      await recordProgressTexts(page);
      const port = Number(new URL(web.server.url).port);
      await web.server.kill();
      // Said plainly, and the stale "about … left" is gone.
      await page.waitForFunction(
        () => /Lost contact/.test(document.getElementById('progress-text')?.textContent ?? ''),
        null,
        {
          timeout: 60_000,
        },
      );
      assert.doesNotMatch((await page.textContent('#progress-text')) ?? '', /left/);
      // The stream gives up after a few tries; then the page polls with a growing wait, and says when.
      await page.waitForFunction(
        () => /trying again in \d+ seconds?…/.test(document.getElementById('progress-text')?.textContent ?? ''),
        null,
        { timeout: 60_000 },
      );
      await shot(page, 'desktop-10-lost-contact');
      let restarted: TestServer | undefined;
      try {
        restarted = await startServer(MODEL!, [], { storage: web.server.storage, port });
        await resultShown(page);
        assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was reloaded');
        // Back in contact, it followed the restarted job's progress to the end.
        const log = await progressTexts(page);
        const lost = log.findIndex((t) => /^Lost contact/.test(t));
        assert.ok(
          lost >= 0 && log.slice(lost).some((t) => new RegExp(`^Step \\d+ of ${STEPS}`).test(t)),
          `no progress shown after the restart: ${JSON.stringify(log.slice(lost, lost + 5))}`,
        );
        await shot(page, 'desktop-11-result-after-restart');
        assert.deepEqual(errors, []);
        await page.close();
      } finally {
        await restarted?.close();
      }
    });
  },
);
