// Each preset's visibility and protection on the shared photos at their own size, as a person
// runs it: `immunize protect PHOTO --preset P --model taef2-hf --check --check-suite jpeg:75`
// (precision auto; every reported number is fp32). Prints one markdown row per photo and preset
// (docs/protect.md#presets): SSIM (full resolution) and PSNR of the change, TAEF2's reconstruction
// PSNR of the clean and the immunized photo against the original, their gap (the protection,
// higher = better), the gap left after re-saving as JPEG-75, the steps taken and the attack's time.
// Usage: PRESETS=balanced,strong PHOTOS=chelsea.png,rocket.jpg THREADS=1 node scripts/measure-presets.mjs
// (dist/ built; IMMUNIZE_SHARED or ../shared for the photos and the model). Prints the load average.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

const shared = process.env.IMMUNIZE_SHARED ?? join(import.meta.dirname, '..', '..', 'shared');
const presets = (process.env.PRESETS ?? 'subtle,balanced,strong,paper').split(',');
const photos = (
  process.env.PHOTOS ?? 'chelsea.png,coffee.png,rocket.jpg,astronaut.png,hubble_deep_field.jpg,trevor_5.jpg'
).split(',');
const threads = process.env.THREADS ?? '1';
const bin = join(import.meta.dirname, '..', 'bin', 'immunize.js');
const out = mkdtempSync(join(tmpdir(), 'measure-presets-'));
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

console.log(`load average ${load()}; threads ${threads}`);
console.log(
  '| photo | size | preset | SSIM | PSNR of the change | reconstruction clean → immunized | gap | gap after JPEG-75 | steps | attack |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|');
try {
  for (const preset of presets)
    for (const photo of photos) {
      const args = [bin, 'protect', join(shared, 'images', photo), '--model', join(shared, 'models', 'taef2-hf')];
      args.push('--preset', preset, '--threads', threads, '--check', '--check-suite', 'jpeg:75', '--json');
      args.push('--force', '-o', join(out, `${preset}-${photo.replace(/\.\w+$/, '')}.png`));
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, IMMUNIZE_QUIET: '1' } });
      if (r.status !== 0) {
        console.log(`| ${photo} | | ${preset} | failed: ${(r.stderr || r.stdout).trim().split('\n').at(-1)} |`);
        continue;
      }
      const s = JSON.parse(r.stdout.trim().split('\n').at(-1));
      const rec = s.results.reconstruction;
      const jpeg = s.check.rows.find((row) => row.purification.startsWith('jpeg'));
      console.log(
        `| ${photo} | ${s.output.width}×${s.output.height} | ${preset} | ${s.results.ssim.toFixed(3)} | ${s.results.psnr.toFixed(1)} dB | ` +
          `${rec.cleanPsnr.toFixed(2)} → ${rec.immunizedVsOriginalPsnr.toFixed(2)} dB | ${(rec.cleanPsnr - rec.immunizedVsOriginalPsnr).toFixed(2)} dB | ` +
          `${jpeg.gapDb.toFixed(2)} dB | ${s.attack.stepsTaken} (${s.attack.stoppedBy}) | ${(s.timing.attackMs / 1000).toFixed(0)} s |`,
      );
    }
} finally {
  rmSync(out, { recursive: true, force: true });
  console.log(`load average ${load()}`);
}
