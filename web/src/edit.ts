/**
 * "Test the protection" (section 6 of the page, docs/web.md): when the server has an editing model
 * (`/v1/config` editing.available), edit the original and the immunized photo with the same prompt
 * and seed (`POST /v1/immunizations/{id}/edits`), follow the edit job's progress, and show both
 * edits side by side with the PSNR/SSIM between them and what they mean. Without one, the section
 * stays disabled and says how to run the same test by hand.
 */
import { ApiError, watchJob } from './api.js';
import type { Api, EditResult, ImmunizationResult, JobRecord, ServiceConfig, Watch } from './api.js';
import { definitionList, fmtDb } from './format.js';

export { EditPanel, editReading };

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page element #${id} is missing`);
  return el as T;
}

/**
 * What the distance between the two edits says, in plain words. Same prompt, same seed, same
 * draws: had the immunization no effect on the editor, the two edits would be nearly the same
 * image (SSIM near 1, PSNR above ~30 dB, the range where differences are hard to see). The
 * thresholds are the usual reading of SSIM (≥ 0.95 near-identical; < 0.5 different scenes).
 */
function editReading(between: { psnr: number; ssim: number }): {
  verdict: 'same' | 'partly' | 'different';
  text: string;
} {
  const { psnr, ssim } = between;
  if (ssim >= 0.95 || psnr >= 30) {
    return {
      verdict: 'same',
      text:
        'The two edits are nearly the same picture: with this prompt and seed the immunization did not change what the editing model made. ' +
        'Against this editing model, this protection did not hold (it may have been made against another model, or too weak: more steps or a stronger intensity help).',
    };
  }
  if (ssim >= 0.5) {
    return {
      verdict: 'partly',
      text:
        'The edits differ noticeably: the immunization changed what the editing model made, but much of the edit came through. ' +
        "Look at both: where the protection works, the immunized photo's edit looks smeared, gray or unrealistic.",
    };
  }
  return {
    verdict: 'different',
    text:
      'The edits are very different: the immunization steered the editing model away from what it makes of the original photo. ' +
      'For this prompt and seed the protection worked — try a few more prompts and seeds before relying on it.',
  };
}

/**
 * The denoising steps img2img actually runs: diffusers starts `strength` of the way into the
 * schedule (init_timestep = min(int(steps × strength), steps)), so 8 steps at strength 0.5 run 4.
 */
function stepsRun(steps: number, strength: number): number {
  return Math.min(Math.floor(steps * strength), steps);
}

class EditPanel {
  private watch: Watch | null = null;
  private available = false;
  private limits: { maxSteps: number; maxPromptChars: number; maxSeed: number } | null = null;
  /** The img2img strength the server uses (its default: the page does not send one). */
  private strength = 0.5;

  constructor(
    private readonly api: Api,
    private readonly currentJob: () => JobRecord<ImmunizationResult> | null,
    private readonly errorText: (e: unknown) => string,
  ) {
    $('edit-run').addEventListener('click', () => void this.run());
  }

  /** Enables the section when the server can edit; otherwise explains how to test by hand. */
  configure(c: ServiceConfig): void {
    const e = c.editing;
    this.available = e?.available === true;
    $<HTMLFieldSetElement>('edit-fields').disabled = !this.available;
    if (!this.available) {
      $('edit-note').textContent =
        'This service does not offer an editing model through its API, so the page cannot edit both photos here' +
        (e?.reason ? ` (${e.reason})` : '') +
        '. To see the effect yourself, edit the original and the downloaded PNG with the same prompt and seed, for example with ' +
        '`immunize edit photo.png --prompt "…" --seed 9209` on a machine with Stable Diffusion: the immunized photo\'s edit should come out unrealistic.';
      return;
    }
    const model = e?.models?.img2img ?? e?.models?.inpaint ?? "the server's model";
    const tiny = e?.testModels?.includes(model) === true;
    $('edit-note').textContent =
      `Edit the original and the immunized photo with the same prompt and the same seed, using ${model} (img2img: ` +
      'the model repaints part of the whole photo). The only difference between the two edits is then the immunization: where it works, ' +
      "the immunized photo's edit comes out wrong." +
      (tiny
        ? ` Note: ${model} is a tiny test model. It runs the real editing pipeline, but its edits are noise, not pictures: ` +
          'comparing them shows that the test runs, not whether the protection holds against a real editor.'
        : '');
    $('edit-note').dataset['testModel'] = String(tiny);
    this.limits = e?.limits ?? null;
    this.strength = e?.defaults?.strength ?? this.strength;
    const steps = $<HTMLInputElement>('edit-steps');
    if (e?.limits) {
      steps.max = String(e.limits.maxSteps);
      $<HTMLInputElement>('edit-prompt').maxLength = e.limits.maxPromptChars;
      $<HTMLInputElement>('edit-seed').max = String(e.limits.maxSeed);
    }
    if (e?.defaults?.steps !== undefined)
      steps.value = String(Math.min(e.defaults.steps, e.limits?.maxSteps ?? e.defaults.steps));
    $('edit-steps-help').textContent =
      `More steps give a cleaner edit and take longer (both photos are edited: twice the work)${e?.limits ? `; at most ${e.limits.maxSteps}` : ''}. ` +
      `The editor keeps part of the photo (strength ${this.strength}), so it runs only that share of the steps: ` +
      `for example ${stepsRun(8, this.strength)} of 8.`;
  }

  /** A new photo or immunization: the previous edits no longer apply. */
  reset(): void {
    this.watch?.close();
    this.watch = null;
    $('edit-result').hidden = true;
    $('edit-progress-box').hidden = true;
    $('edit-status').textContent = '';
    $<HTMLButtonElement>('edit-run').disabled = false;
  }

  private async run(): Promise<void> {
    const job = this.currentJob();
    if (!this.available || !job || job.status !== 'completed') return;
    const prompt = $<HTMLInputElement>('edit-prompt').value.trim();
    const seed = Number($<HTMLInputElement>('edit-seed').value);
    const steps = Number($<HTMLInputElement>('edit-steps').value);
    const status = $('edit-status');
    const bar = $<HTMLProgressElement>('edit-progress');
    $('edit-progress-box').hidden = false;
    // The server's limits, checked here first: a refusal then costs no upload and no round trip.
    const refusal = this.refusal(prompt, seed, steps);
    if (refusal) {
      bar.value = 0;
      status.textContent = refusal;
      return;
    }
    const button = $<HTMLButtonElement>('edit-run');
    button.disabled = true;
    $('edit-result').hidden = true;
    bar.removeAttribute('value');
    status.textContent = 'Sending the edit…';
    this.watch?.close();
    let rec: JobRecord<EditResult>;
    try {
      rec = await this.api.edit(job.id, { prompt, seed, steps });
    } catch (e) {
      button.disabled = false;
      bar.value = 0; // stops the indeterminate animation: nothing is running
      status.textContent =
        e instanceof ApiError && e.code === 'E_NOT_IMPLEMENTED'
          ? `Editing is not available: ${e.message}`
          : `The edit could not start: ${this.errorText(e)}`;
      return;
    }
    this.watch = watchJob<EditResult>(this.api, rec, {
      record: (r) => {
        if (r.status === 'queued') status.textContent = 'The edit is waiting in the queue…';
        else if (r.status === 'running' && !r.progress) status.textContent = 'Loading the editing model…';
      },
      progress: (p) => {
        bar.value = p.fraction;
        const half = p.steps / 2;
        status.textContent =
          p.step <= half
            ? `Editing the original: step ${p.step} of ${half}`
            : `Editing the immunized photo: step ${p.step - half} of ${half}`;
      },
      end: (r) => {
        button.disabled = false;
        this.watch = null;
        this.show(r);
      },
      lost: (e) => {
        button.disabled = false;
        bar.value = 0;
        status.textContent = `Lost contact with the edit: ${this.errorText(e)}`;
      },
    });
  }

  /** Why the settings cannot be sent, in the page's words, or null. */
  private refusal(prompt: string, seed: number, steps: number): string | null {
    const lim = this.limits;
    if (prompt === '') return 'Write a prompt first: what the editor should make of the photo.';
    if (lim && prompt.length > lim.maxPromptChars)
      return `The prompt is ${prompt.length} characters; this service accepts up to ${lim.maxPromptChars}.`;
    if (!Number.isInteger(seed) || seed < 0) return 'The seed is a whole number, 0 or more.';
    if (lim && seed > lim.maxSeed) return `The seed is at most ${lim.maxSeed}.`;
    if (!Number.isInteger(steps) || steps < 1) return 'Steps is a whole number, 1 or more.';
    if (lim && steps > lim.maxSteps)
      return `This service runs at most ${lim.maxSteps} editing steps; you asked for ${steps}.`;
    if (stepsRun(steps, this.strength) < 1)
      return (
        `At strength ${this.strength} the editor runs ${steps} × ${this.strength} steps, rounded down: none at all; ` +
        `ask for at least ${Math.ceil(1 / this.strength)}.`
      );
    return null;
  }

  private show(r: JobRecord<EditResult>): void {
    const status = $('edit-status');
    const res = r.result;
    if (r.status !== 'completed' || !res || !r.links.original || !r.links.immunized) {
      status.textContent =
        r.status === 'canceled' ? 'The edit was canceled.' : `The edit failed: ${r.error?.message ?? 'unknown error'}`;
      return;
    }
    $<HTMLProgressElement>('edit-progress').value = 1;
    status.textContent =
      `Done: both photos edited with “${res.prompt}”, seed ${res.seed}, ${res.stepsRun} ${res.stepsRun === 1 ? 'step' : 'steps'} each` +
      (res.stepsRun < res.steps
        ? ` (${res.steps} asked × strength ${res.strength ?? this.strength}: the editor starts part-way, keeping the rest of the photo).`
        : '.');
    $<HTMLImageElement>('edit-original-img').src = r.links.original;
    $<HTMLImageElement>('edit-immunized-img').src = r.links.immunized;
    $<HTMLAnchorElement>('edit-original-link').href = r.links.original;
    $<HTMLAnchorElement>('edit-immunized-link').href = r.links.immunized;
    const rows: [string, string][] = [
      ['PSNR between the two edits', fmtDb(res.between.psnr)],
      ['SSIM between the two edits', res.between.ssim.toFixed(3)],
      ['For comparison: the immunized photo against the original', fmtDb(res.inputs.psnr)],
    ];
    definitionList($('edit-metrics'), rows);
    const reading = editReading(res.between);
    const p = $('edit-reading');
    p.textContent =
      reading.text +
      (res.resized
        ? ` (Both photos were resized to ${res.width} × ${res.height}, a multiple of 8, as the editing model needs.)`
        : '');
    p.dataset['verdict'] = reading.verdict;
    $('edit-result').hidden = false;
  }
}
