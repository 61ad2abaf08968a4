// One describe()'s browser session, shared by the web-page tests: a real server (started by the
// test's own `start`), a locked-down Chromium on it and a small real photo, set up in before()
// and closed in after() — which also fails the suite when the page asked for any other origin.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { OUT_DIR, ensureWebBuilt, launchLockedDown, smallPhoto } from './harness.js';
import type { TestServer } from './server.js';

// Callbacks given to page.waitForFunction run in the browser; the repo's tsconfig has no DOM lib.
declare const document: { getElementById(id: string): { textContent: string | null } | null };

export interface WebSession {
  readonly server: TestServer;
  readonly context: BrowserContext;
  /** A small real photo to upload. */
  readonly photo: string;
  /**
   * A new width×height page on the server's page, once it says it is connected; `errors` collects
   * its JavaScript errors and the console errors that `ignore` does not match.
   */
  open(width: number, height: number, ignore: RegExp): Promise<{ page: Page; errors: string[] }>;
}

export function webSession(start: () => Promise<TestServer>, o: { acceptDownloads?: boolean } = {}): WebSession {
  let browser: Awaited<ReturnType<typeof launchLockedDown>> | undefined;
  const s = {
    open: async (width: number, height: number, ignore: RegExp) => {
      const page = await s.context.newPage();
      await page.setViewportSize({ width, height });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error' && !ignore.test(m.text())) errors.push(m.text());
      });
      await page.goto(s.server.url + '/');
      await page.waitForFunction(() => /Connected/.test(document.getElementById('server-status')?.textContent ?? ''));
      return { page, errors };
    },
  } as { -readonly [K in keyof WebSession]: WebSession[K] };

  before(async () => {
    ensureWebBuilt();
    s.photo = await smallPhoto(96);
    s.server = await start();
    // Nothing but the server may be reached (no CDN, no fonts): other requests are recorded and refused.
    browser = await launchLockedDown(s.server.url, o);
    s.context = browser.context;
  });

  after(async () => {
    assert.deepEqual(browser?.offOrigin ?? [], [], 'the page requested other origins');
    await browser?.close();
    await s.server?.close();
  });
  return s;
}

/** A full-page screenshot in test-output/web/`name`.png. */
export function shot(page: Page, name: string): Promise<Buffer> {
  return page.screenshot({ path: join(OUT_DIR, `${name}.png`), fullPage: true });
}

/**
 * Starts recording every text the page's progress line shows (steps fly by faster than a poll
 * could see them); `progressTexts` reads what was recorded.
 */
export async function recordProgressTexts(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = globalThis as unknown as { progressLog?: string[]; document: DocumentLike };
    const el = w.document.getElementById('progress-text')!;
    const log: string[] = [];
    w.progressLog = log;
    new MutationObserver(() => log.push(el.textContent ?? '')).observe(el as never, {
      childList: true,
      characterData: true,
      subtree: true,
    });
  });
}

export function progressTexts(page: Page): Promise<string[]> {
  return page.evaluate(() => (globalThis as unknown as { progressLog?: string[] }).progressLog ?? []);
}

type DocumentLike = { getElementById(id: string): { textContent: string | null } | null };
declare class MutationObserver {
  constructor(cb: () => void);
  observe(el: never, o: object): void;
}
