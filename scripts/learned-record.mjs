// Draws the learned immunizer's training curves from the history.json that
// scripts/train-immunizer.mjs writes: DIR/loss-curve.svg (training loss, averaged into about ten
// points, and the validation loss) and DIR/val-psnr.svg (validation reconstruction PSNR through
// TAEF2, immunized and clean). Usage: node scripts/learned-record.mjs HISTORY.json DIR
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lineChart } from '../dist/src/eval/svg.js';

const [historyPath, dir] = process.argv.slice(2);
if (!historyPath || !dir) {
  console.error('usage: node scripts/learned-record.mjs HISTORY.json DIR');
  process.exit(2);
}
const { history } = JSON.parse(readFileSync(historyPath, 'utf8'));
// About ten buckets, so the step labels on the x axis stay readable.
const size = Math.max(1, Math.ceil(history.loss.length / 10));
const train = [];
for (let i = 0; i < history.loss.length; i += size) {
  const part = history.loss.slice(i, i + size);
  train.push({ x: part.at(-1)[0], y: part.reduce((s, [, l]) => s + l, 0) / part.length });
}
const val = history.val.map((v) => ({ x: v.step, y: v.loss }));
writeFileSync(
  join(dir, 'loss-curve.svg'),
  lineChart('Learned immunizer: loss (latent MSE to E(gray))', 'step', 'loss', [
    { label: 'training', color: '#1f77b4', points: train },
    { label: 'validation', color: '#d62728', points: val },
  ]),
);
writeFileSync(
  join(dir, 'val-psnr.svg'),
  lineChart('Validation reconstruction PSNR (TAEF2)', 'step', 'dB (lower = protected)', [
    { label: 'immunized', color: '#d62728', points: history.val.map((v) => ({ x: v.step, y: v.psnr })) },
    { label: 'clean', color: '#7f7f7f', points: history.val.map((v) => ({ x: v.step, y: v.cleanPsnr })) },
  ]),
);
console.log(`wrote ${join(dir, 'loss-curve.svg')} and ${join(dir, 'val-psnr.svg')}`);
