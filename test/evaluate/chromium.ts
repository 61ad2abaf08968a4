// Renders a page in Debian's Chromium through playwright-core (never a downloaded browser), with
// the flags of DESIGN.md §5 and a fresh profile; collects console errors, requests and what the
// report tests check.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_FLAGS } from '../helpers/chromium.js';
import { repoRoot } from '../helpers/shared.js';

export function chromiumSkipReason(): string | false {
  return existsSync(CHROMIUM)
    ? false
    : `Chromium not found at ${CHROMIUM} (apt-get install chromium, or set IMMUNIZE_CHROMIUM)`;
}

/** Where tests leave files for people to look at (screenshots): $IMMUNIZE_TEST_OUTPUT or dist/test-output. */
export function testOutputDir(sub: string): string {
  const dir = join(process.env['IMMUNIZE_TEST_OUTPUT'] ?? join(repoRoot, 'dist', 'test-output'), sub);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export interface RenderedPage {
  consoleErrors: string[];
  requests: string[];
  summaryRows: number;
  images: number;
  brokenImages: string[];
  svgs: number;
  sweepCharts: number;
}

export async function renderInChromium(page: string, screenshot: string): Promise<RenderedPage> {
  const profile = mkdtempSync(join(tmpdir(), 'immunize-chromium-'));
  // playwright wants the profile as launchPersistentContext's argument, not as --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: CHROMIUM_FLAGS,
  });
  try {
    const p = await context.newPage();
    const consoleErrors: string[] = [];
    const requests: string[] = [];
    p.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(`${m.type()}: ${m.text()}`);
    });
    p.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
    p.on('request', (r) => requests.push(r.url()));
    await p.goto(pathToFileURL(page).href, { waitUntil: 'load' });
    // Purified versions sit in closed <details>: open them so their images load too.
    // Evaluated in the page (strings: this project compiles without the DOM's types).
    await p.evaluate("for (const d of document.querySelectorAll('details')) d.open = true");
    await p.waitForFunction('[...document.images].every((i) => i.complete)', undefined, { timeout: 30_000 });
    const info = await p.evaluate<Omit<RenderedPage, 'consoleErrors' | 'requests'>>(`({
      summaryRows: document.querySelectorAll('#summary tbody tr').length,
      images: document.images.length,
      brokenImages: [...document.images].filter((i) => !(i.naturalWidth > 0)).map((i) => i.alt || i.src.slice(0, 60)),
      svgs: document.querySelectorAll('svg.chart').length,
      sweepCharts: document.querySelectorAll('[data-sweep] svg').length,
    })`);
    await p.screenshot({ path: screenshot, fullPage: true });
    return { consoleErrors, requests: requests.map((u) => u.slice(0, 200)), ...info };
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
