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
  const loss = s.attack ? `loss ${s.attack.losses[0]?.toFixed(3)} → ${s.attack.finalLoss?.toFixed(3)}, ` : '';
  if (!job.checkOnly)
    console.log(
      `${job.input} → ${job.output}\n  ${visibilityText(s.results)}\n  ${protectionText(s.results)}\n  (${loss}${(s.timing.totalMs / 1000).toFixed(1)} s)`,
    );
  if (s.check) console.log(`${formatCheck(s.check)}\n  → ${checkPathFor(job.output)}`);
}

/** How visible the change is, in one line: SSIM first (the target's measure), then PSNR and L∞. */
export function visibilityText(r: ProtectSidecar['results']): string {
  const v = r.visibility;
  const target = v === undefined ? '' : ` (target ≥ ${v.minSsim}${v.met ? ', met' : ', NOT met'})`;
  const back =
    v?.scaledBack == null
      ? ''
      : `; the change was scaled to ${(v.scaledBack * 100).toFixed(0)}% at the end to meet the target`;
  return `visibility: SSIM ${r.ssim?.toFixed(3) ?? 'n/a'} to the original${target}, PSNR ${r.psnr.toFixed(1)} dB, at most ${r.linf255.toFixed(0)}/255 per colour value${back}`;
}

/** How much protection that buys, in one line: the model's reconstruction, clean and immunized, and the gap. */
export function protectionText(r: ProtectSidecar['results']): string {
  const rec = r.reconstruction;
  if (rec === null) return 'protection: not measured (no model to measure it through)';
  const gap = rec.cleanPsnr - rec.immunizedVsOriginalPsnr;
  return `protection: reconstruction ${rec.cleanPsnr.toFixed(1)} → ${rec.immunizedVsOriginalPsnr.toFixed(1)} dB, a gap of ${gap.toFixed(1)} dB (higher = better protected)`;
}
