// Pre-decodes the learned immunizer's training photos once: each file listed in LIST (one path a
// line, relative to ROOT, `#` comments allowed) is resized to a longest side of 768 px (Lanczos,
// never enlarged) and written as PNG under OUT, so the training loop never decodes a JPEG.
// Usage: node scripts/prepare-immunizer-data.mjs ROOT LIST OUT [longest=768]
import { mkdirSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import sharp from 'sharp';

const [root, list, out, longestArg] = process.argv.slice(2);
if (!root || !list || !out) {
  console.error('usage: node scripts/prepare-immunizer-data.mjs ROOT LIST OUT [longest=768]');
  process.exit(2);
}
const longest = Number(longestArg ?? 768);
mkdirSync(out, { recursive: true });
const files = readFileSync(list, 'utf8')
  .split('\n')
  .map((l) => l.replace(/#.*/, '').trim())
  .filter(Boolean);
for (const f of files) {
  // The wallpaper packages name files by resolution: the folder above `contents/images` names the photo.
  const name = f.includes('/contents/images/') ? basename(dirname(dirname(dirname(f)))) : basename(f, extname(f));
  const target = join(out, `${name}.png`);
  await sharp(join(root, f))
    .rotate()
    .toColourspace('srgb')
    .removeAlpha()
    .resize({ width: longest, height: longest, fit: 'inside', withoutEnlargement: true, kernel: 'lanczos3' })
    .png()
    .toFile(target);
  console.log(`${f} -> ${target}`);
}
