/** What `immunize protect` shows while and after it works: progress bars on stderr, one result line (or JSON) per photo. */
import { createProgress, type Progress } from '../io/progress.js';
import { checkPathFor, type ProtectSidecar, type ProtectStep } from '../protect/index.js';
import { formatCheck } from '../robustness/check.js';

/** Progress bars of one photo: the attack's steps, then the check's purifications. */
export function progressFor(label: string): { onStep: (s: ProtectStep) => void; done: () => void } {
  let bar: Progress | null = null;
  let phase = '';
  let first: number | null = null;
  let last: number | null = null;
  const close = (): void => {
    bar?.done(phase === 'attack' && first !== null ? `loss ${first.toFixed(4)} → ${last!.toFixed(4)}` : undefined);
    bar = null;
  };
  return {
    onStep: (s) => {
      if (s.phase !== phase) {
        close();
        phase = s.phase;
        bar = createProgress({ label: s.phase === 'check' ? `${label} check` : label, total: s.steps, unit: 'step' });
      }
      if (s.loss !== null) {
        first ??= s.loss;
        last = s.loss;
      }
      bar!.update(s.step, s.phase === 'attack' ? `loss ${s.loss?.toFixed(4)}` : s.detail);
    },
    done: close,
  };
}

export function printResult(
  job: { input: string; output: string; checkOnly?: boolean },
  s: ProtectSidecar,
  json: boolean,
): void {
  if (json) {
    console.log(JSON.stringify(s));
    return;
  }
  const r = s.results;
  const loss = s.attack ? `, loss ${s.attack.losses[0]?.toFixed(3)} → ${s.attack.finalLoss?.toFixed(3)}` : '';
  const rec = r.reconstruction
    ? `, reconstruction ${r.reconstruction.cleanPsnr.toFixed(1)} → ${r.reconstruction.immunizedVsOriginalPsnr.toFixed(1)} dB`
    : '';
  if (!job.checkOnly)
    console.log(
      `${job.input} → ${job.output}  (L∞ ${r.linf255.toFixed(1)}/255, PSNR ${r.psnr.toFixed(2)} dB, SSIM ${r.ssim?.toFixed(4) ?? 'n/a'}${loss}${rec}, ${(s.timing.totalMs / 1000).toFixed(1)} s)`,
    );
  if (s.check) console.log(`${formatCheck(s.check)}\n  → ${checkPathFor(job.output)}`);
}
