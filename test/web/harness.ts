// Shared set-up of the web-page tests: Chromium (Debian's, through playwright-core, with the
// flags of DESIGN.md §5), the built page, a real server with TAEF2, a small real photo, and the
// screenshot folder test-output/web/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { chromium, type BrowserContext } from 'playwright-core';
import { CHROMIUM, CHROMIUM_FLAGS } from '../helpers/chromium.js';
import { repoRoot, sharedPath } from '../helpers/shared.js';

export const OUT_DIR = join(repoRoot, 'test-output', 'web');

/** Why the browser tests cannot run here, or null. In CI a missing piece is a failure, not a skip. */
export function missing(): string | null {
  const why: string[] = [];
  if (!existsSync(CHROMIUM))
    why.push(`Chromium not found at ${CHROMIUM} (apt-get install chromium, or set IMMUNIZE_CHROMIUM)`);
  if (sharedPath('models', 'taef2-hf') === null)
    why.push('shared model ../shared/models/taef2-hf not found (set IMMUNIZE_SHARED)');
  if (sharedPath('images', 'chelsea.png') === null) why.push('shared photo ../shared/images/chelsea.png not found');
  if (why.length === 0) return null;
  const msg = why.join('; ');
  if (process.env['CI']) throw new Error(`web page tests cannot run in CI: ${msg}`);
  return msg;
}

function newest(dir: string): number {
  return readdirSync(dir).reduce((m, n) => {
    const p = join(dir, n);
    const st = statSync(p);
    return Math.max(m, st.isDirectory() ? newest(p) : st.mtimeMs);
  }, 0);
}

/** Builds dist/web when it is missing or older than web/ (npm test builds it already). */
export function ensureWebBuilt(): void {
  const index = join(repoRoot, 'dist', 'web', 'index.html');
  if (existsSync(index) && statSync(index).mtimeMs >= newest(join(repoRoot, 'web'))) return;
  const r = spawnSync(process.execPath, [join(repoRoot, 'scripts', 'build-web.mjs')], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`npm run build:web failed:\n${r.stdout}\n${r.stderr}`);
}

/** A real photo scaled so its longer side is `size` px, as PNG (its pixels are what the server reads). */
export async function smallPhoto(size = 96): Promise<string> {
  mkdirSync(OUT_DIR, { recursive: true });
  const out = join(OUT_DIR, `photo-${size}.png`);
  await sharp(sharedPath('images', 'chelsea.png')!)
    .resize(size, size, { fit: 'inside' })
    .removeAlpha()
    .png()
    .toFile(out);
  return out;
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * Debian's Chromium with a fresh profile, where nothing but `origin` (and blob:/data:) may be
 * reached: other requests are refused and recorded in `offOrigin` (the tests assert it stays empty).
 */
export async function launchLockedDown(
  origin: string,
  o: { acceptDownloads?: boolean } = {},
): Promise<{ context: BrowserContext; offOrigin: string[]; close(): Promise<void> }> {
  const profile = tempDir('immunize-chromium-');
  const context = await chromium.launchPersistentContext(profile.path, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 900 },
    ...(o.acceptDownloads ? { acceptDownloads: true } : {}),
  });
  const offOrigin: string[] = [];
  await context.route(
    (url) => !url.href.startsWith(origin) && !url.href.startsWith('blob:') && !url.href.startsWith('data:'),
    (route) => {
      offOrigin.push(route.request().url());
      return route.abort();
    },
  );
  return {
    context,
    offOrigin,
    close: async () => {
      await context.close();
      profile.remove();
    },
  };
}
