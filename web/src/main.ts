/**
 * The page served by `immunize serve` at `/`: choose a photo, paint what to protect, pick a
 * preset, model and intensity, immunize with live progress, compare, download, and check how much
 * protection survives JPEG re-compression. It talks only to the same-origin v1 API (docs/api.md).
 */
import { Api, ApiError, watchJob } from './api.js';
import type { CheckResult, ImmunizationResult, JobRecord, Progress, ServiceConfig, Watch } from './api.js';
import { DiffView } from './diff.js';
import { EditPanel } from './edit.js';
import { fmtBytes, fmtDb, fmtDuration, fmtPixels } from './format.js';
import { MaskEditor } from './mask.js';
import { EpsPreview } from './preview.js';

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page element #${id} is missing`);
  return el as T;
}

/** Plain-language explanations of the presets, models and methods the server may offer. */
const PRESET_HELP: Record<string, string> = {
  default:
    "The recommended protection: the published attack's strength with a faster optimiser (momentum), 200 steps. Slow on a CPU for large photos.",
  paper:
    'Exactly the published attack (Salman et al. 2023): sign steps, 200 steps, for comparisons with the paper. Slow on a CPU for large photos.',
  'photoguard-demo': "The settings of photoguard's online demo: a little weaker change (about 15/255), 200 steps.",
  fast: "A quick protection in 40 steps, good for trying things out; somewhat weaker than the paper's.",
};
const METHOD_HELP: Record<string, string> = {
  encoder:
    "Encoder attack: changes the photo so the model's image encoder sees a flat gray image instead. Fast and effective.",
  diffusion:
    'Diffusion attack: steers the whole editing pipeline around the painted region. Stronger but much slower; needs a painted region and an inpainting model.',
  noise: 'Random noise of the same size, for comparison only: it does not protect anything.',
};
function modelHelp(id: string, description?: string): string {
  if (description) return description;
  if (/taef2|taesd|taesdxl|taef1/i.test(id))
    return "A tiny stand-in for a large model's image encoder: fast, and protection transfers to models that share that encoder.";
  if (/stable-diffusion|sd-|vae/i.test(id))
    return "Stable Diffusion's own image encoder: what most photo editors built on Stable Diffusion use. Slower.";
  return 'The image encoder the protection is made against. Protection works best against this model and those that share its encoder.';
}

const api = new Api();
let config: ServiceConfig | null = null;
let photo: { file: File; bitmap: ImageBitmap; url: string } | null = null;
let mask: MaskEditor | null = null;
let preview: EpsPreview | null = null;
let job: JobRecord<ImmunizationResult> | null = null;
let watch: Watch | null = null;
let checkWatch: Watch | null = null;
const diff = new DiffView($<HTMLCanvasElement>('diff-canvas'), $('diff-scroll'));
// Section 6, "Test the protection" (edit.ts); errorText is a function declaration, so it exists here.
const editPanel = new EditPanel(
  api,
  () => job,
  (e) => errorText(e),
);

function showAlert(msg: string): void {
  const a = $('alert');
  a.textContent = msg;
  a.hidden = false;
  a.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
}
function clearAlert(): void {
  const a = $('alert');
  a.hidden = true;
  a.textContent = '';
}
function errorText(e: unknown): string {
  if (e instanceof ApiError) {
    switch (e.code) {
      case 'E_VALIDATION':
      case 'E_MISSING_FIELD':
        return `The service refused a setting — ${e.message}`;
      case 'E_IMAGE':
        return `The service could not read the photo: ${e.message}`;
      case 'E_IMAGE_TOO_LARGE':
      case 'E_UPLOAD_TOO_LARGE':
        return `The photo is too large for this service: ${e.message}`;
      case 'E_UNAUTHORIZED':
        return `The API key was refused: ${e.message}`;
      case 'E_RATE_LIMITED':
        return `Too many requests: ${e.message}`;
      default:
        return e.message;
    }
  }
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------- config

async function init(): Promise<void> {
  try {
    config = await api.config();
  } catch (e) {
    $('server-status').textContent = 'The service cannot be reached.';
    showAlert(`Could not load the service's settings: ${errorText(e)}`);
    return;
  }
  const c = config;
  $('server-status').textContent = `Connected to Immunize ${c.version}.`;
  if (c.auth === 'api-key') {
    $('auth-section').hidden = false;
    const key = $<HTMLInputElement>('api-key');
    key.value = sessionStorage.getItem('immunize-key') ?? '';
    api.key = key.value;
    key.addEventListener('input', () => {
      api.key = key.value.trim();
      sessionStorage.setItem('immunize-key', api.key);
    });
  }
  $('limits').textContent =
    `PNG, JPEG, WebP, AVIF or GIF · up to ${fmtBytes(c.limits.maxUploadBytes)} and ${fmtPixels(c.limits.maxPixels)}.` +
    (c.limits.retentionMs ? ` Results are deleted after ${fmtDuration(c.limits.retentionMs)}.` : '');

  const preset = $<HTMLSelectElement>('preset');
  for (const p of c.presets) preset.add(new Option(p.id, p.id, false, p.id === (c.defaults.preset ?? 'default')));
  const model = $<HTMLSelectElement>('model');
  for (const m of c.models) model.add(new Option(m.id, m.id, false, m.default === true));
  const method = $<HTMLSelectElement>('method');
  for (const m of c.methods) method.add(new Option(m, m, false, m === (c.defaults.method ?? 'encoder')));
  $<HTMLInputElement>('steps').max = String(c.limits.maxSteps);
  $<HTMLInputElement>('seed').value = String(c.defaults.seed ?? 0);
  preset.addEventListener('change', presetChanged);
  model.addEventListener('change', () => {
    $('model-help').textContent = modelHelp(model.value, c.models.find((m) => m.id === model.value)?.description);
  });
  method.addEventListener('change', () => {
    $('method-help').textContent = METHOD_HELP[method.value] ?? '';
  });
  presetChanged();
  model.dispatchEvent(new Event('change'));
  method.dispatchEvent(new Event('change'));

  if (c.checkAvailable === false) {
    $<HTMLButtonElement>('check-run').disabled = true;
    $('check-status').textContent = 'This server does not run protection checks.';
  }
  editPanel.configure(c);
}

function presetChanged(): void {
  const id = $<HTMLSelectElement>('preset').value;
  const p = config?.presets.find((x) => x.id === id);
  $('preset-help').textContent = [PRESET_HELP[id], p ? `Exactly: ${p.description}.` : ''].filter(Boolean).join(' ');
  if (p) {
    setEps(Math.round(p.eps * 255));
    $<HTMLInputElement>('steps').placeholder = String(p.steps);
  }
}

function setEps(v: number): void {
  const eps = $<HTMLInputElement>('eps');
  eps.value = String(Math.min(Number(eps.max), Math.max(Number(eps.min), v)));
  epsChanged();
}

function epsChanged(): void {
  const v = Number($<HTMLInputElement>('eps').value);
  $('eps-out').textContent = `${v}/255`;
  $('eps-fig').textContent = String(v);
  $<HTMLInputElement>('eps').setAttribute('aria-valuetext', `${v} out of 255 levels per pixel`);
  preview?.render(v);
}
$('eps').addEventListener('input', epsChanged);

// ---------------------------------------------------------------- photo

async function choose(file: File): Promise<void> {
  clearAlert();
  const lim = config?.limits;
  if (lim && file.size > lim.maxUploadBytes) {
    showAlert(
      `“${file.name}” is ${fmtBytes(file.size)}; this service accepts files up to ${fmtBytes(lim.maxUploadBytes)}.`,
    );
    return;
  }
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    showAlert(
      `“${file.name}” is not an image this page can read${file.type ? ` (it is ${file.type})` : ''}. Choose a photo: PNG, JPEG, WebP, AVIF or GIF.`,
    );
    return;
  }
  if (lim && bitmap.width * bitmap.height > lim.maxPixels) {
    showAlert(
      `“${file.name}” has ${fmtPixels(bitmap.width * bitmap.height)}; this service accepts up to ${fmtPixels(lim.maxPixels)}. Make it smaller first.`,
    );
    bitmap.close();
    return;
  }
  resetJob();
  if (photo) {
    URL.revokeObjectURL(photo.url);
    photo.bitmap.close();
  }
  photo = { file, bitmap, url: URL.createObjectURL(file) };
  $('file-info').textContent = `${file.name} — ${bitmap.width} × ${bitmap.height} pixels, ${fmtBytes(file.size)}.`;
  mask?.destroy();
  mask = new MaskEditor($<HTMLCanvasElement>('mask-canvas'), bitmap);
  mask.brushPx = Number($<HTMLInputElement>('brush-size').value);
  mask.onChange = maskChanged;
  preview = new EpsPreview(bitmap, $<HTMLCanvasElement>('preview-before'), $<HTMLCanvasElement>('preview-after'));
  maskChanged();
  for (const id of ['mask-section', 'settings-section', 'run-section']) $(id).hidden = false;
}

function maskChanged(): void {
  if (!mask) return;
  $<HTMLButtonElement>('mask-undo').disabled = !mask.canUndo;
  $<HTMLButtonElement>('mask-clear').disabled = mask.empty;
  $('mask-state').textContent = mask.empty
    ? 'Nothing painted: the whole photo will be protected.'
    : `Painted ${(mask.coverage() * 100).toFixed(0)}% of the photo: only that part will be changed.`;
  preview?.setMask(mask.empty ? null : mask.maskCanvas());
  epsChanged();
}

const fileInput = $<HTMLInputElement>('file-input');
fileInput.addEventListener('change', () => {
  const f = fileInput.files?.[0];
  if (f) void choose(f);
  fileInput.value = '';
});
const drop = $('drop-zone');
for (const t of ['dragenter', 'dragover'])
  drop.addEventListener(t, (ev) => {
    ev.preventDefault();
    drop.classList.add('over');
  });
for (const t of ['dragleave', 'drop']) drop.addEventListener(t, () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  const f = (ev as DragEvent).dataTransfer?.files[0];
  if (f) void choose(f);
});
// A photo dropped anywhere else should not replace the page with the file.
window.addEventListener('dragover', (ev) => ev.preventDefault());
window.addEventListener('drop', (ev) => ev.preventDefault());

$('brush-size').addEventListener('input', () => {
  const v = Number($<HTMLInputElement>('brush-size').value);
  $('brush-size-out').textContent = `${v} px`;
  if (mask) mask.brushPx = v;
});
$('mask-undo').addEventListener('click', () => mask?.undo());
$('mask-clear').addEventListener('click', () => mask?.clear());

// ---------------------------------------------------------------- immunize

function resetJob(): void {
  watch?.close();
  watch = null;
  checkWatch?.close();
  checkWatch = null;
  editPanel.reset();
  job = null;
  for (const id of ['result-section', 'edit-section', 'check-section', 'progress-box', 'check-result'])
    $(id).hidden = true;
  $('cancel').hidden = true;
  $<HTMLButtonElement>('immunize').disabled = false;
  $('check-status').textContent = '';
}

function setRunning(on: boolean): void {
  $<HTMLButtonElement>('immunize').disabled = on;
  $('cancel').hidden = !on;
  $<HTMLButtonElement>('cancel').disabled = false;
  for (const id of ['file-input', 'preset', 'model', 'method', 'eps', 'steps', 'seed', 'size'])
    $<HTMLInputElement>(id).disabled = on;
}

let losses: number[] = [];
let startedAt = 0;

function showProgress(p: Progress): void {
  const bar = $<HTMLProgressElement>('progress');
  bar.value = p.fraction;
  bar.textContent = `${Math.round(p.fraction * 100)}%`;
  let eta = p.etaMs;
  if (eta === null && p.step > 0 && startedAt > 0) eta = ((Date.now() - startedAt) / p.step) * (p.steps - p.step);
  const parts = [`Step ${p.step} of ${p.steps}`];
  if (p.loss !== null && Number.isFinite(p.loss)) parts.push(`loss ${p.loss.toPrecision(4)}`);
  if (eta !== null && p.step < p.steps) parts.push(`about ${fmtDuration(eta)} left`);
  $('progress-text').textContent = parts.join(' · ');
  if (p.loss !== null && Number.isFinite(p.loss)) {
    losses[p.step] = p.loss;
    drawLoss();
  }
}

function drawLoss(): void {
  const pts = losses.map((l, i) => [i, l] as const).filter(([, l]) => l !== undefined);
  if (pts.length < 2) {
    $('loss-line').setAttribute('points', '');
    return;
  }
  const first = pts[0]![0],
    n = Math.max(1, pts[pts.length - 1]![0] - first);
  const hi = Math.max(...pts.map(([, l]) => l)),
    lo = Math.min(...pts.map(([, l]) => l));
  const span = hi - lo || 1;
  $('loss-line').setAttribute(
    'points',
    pts
      .map(([i, l]) => `${(((i - first) / n) * 200).toFixed(1)},${(38 - ((l - lo) / span) * 36).toFixed(1)}`)
      .join(' '),
  );
}

function showRecord(r: JobRecord): void {
  if (r.status === 'queued') {
    $('progress-text').textContent =
      r.queuePosition !== null && r.queuePosition !== undefined
        ? `Waiting in the queue (${r.queuePosition === 0 ? 'next' : `${r.queuePosition} ahead`})…`
        : 'Waiting in the queue…';
  } else if (r.status === 'running' && !r.progress) {
    if (!startedAt) startedAt = Date.now();
    $('progress-text').textContent = 'Loading the model and preparing the photo…';
  }
  if (r.status === 'running' && !startedAt) startedAt = Date.now();
}

async function immunize(): Promise<void> {
  if (!photo || !config) return;
  clearAlert();
  const method = $<HTMLSelectElement>('method').value;
  if (method === 'diffusion' && (!mask || mask.empty)) {
    showAlert('The diffusion method needs a painted region: paint what to protect in step 2.');
    return;
  }
  const presetId = $<HTMLSelectElement>('preset').value;
  const preset = config.presets.find((p) => p.id === presetId);
  const eps255 = Number($<HTMLInputElement>('eps').value);
  const fields: Record<string, string> = {
    preset: presetId,
    method,
    eps: `${eps255}/255`,
    seed: $<HTMLInputElement>('seed').value || '0',
  };
  const model = $<HTMLSelectElement>('model').value;
  if (model) fields['model'] = model;
  // The presets' step sizes are fractions of their ε (the paper: ε/8); keep that ratio when ε moves.
  if (preset && Math.round(preset.eps * 255) !== eps255)
    fields['stepSize'] = String((preset.stepSize * eps255) / 255 / preset.eps);
  const steps = $<HTMLInputElement>('steps').value.trim();
  if (steps) fields['steps'] = steps;
  const size = $<HTMLSelectElement>('size').value;
  if (size) fields['size'] = size;

  resetJob();
  setRunning(true);
  losses = [];
  startedAt = 0;
  drawLoss();
  $('progress-box').hidden = false;
  $<HTMLProgressElement>('progress').value = 0;
  $('progress-text').textContent = 'Uploading…';
  try {
    const maskBlob = mask ? await mask.toBlob() : null;
    job = await api.create(fields, photo.file, photo.file.name, maskBlob ?? undefined);
  } catch (e) {
    setRunning(false);
    $('progress-box').hidden = true;
    showAlert(errorText(e));
    return;
  }
  showRecord(job);
  watch = watchJob<ImmunizationResult>(api, job, {
    record: (r) => {
      job = r;
      showRecord(r);
    },
    progress: showProgress,
    end: (r) => {
      job = r;
      watch = null;
      finished(r);
    },
    lost: (e) => {
      setRunning(false);
      showAlert(`Lost contact with the job: ${errorText(e)}`);
    },
  });
}

function finished(r: JobRecord<ImmunizationResult>): void {
  setRunning(false);
  if (r.status === 'completed' && r.result) {
    const steps = r.result.attack?.stepsTaken ?? r.progress?.steps;
    $<HTMLProgressElement>('progress').value = 1;
    $('progress-text').textContent =
      `Done${steps ? `: ${steps} steps` : ''}${r.result.timing?.totalMs ? ` in ${fmtDuration(r.result.timing.totalMs)}` : ''}.`;
    void showResult(r);
  } else if (r.status === 'canceled') {
    $('progress-text').textContent = 'Canceled. Nothing was kept.';
  } else {
    $('progress-text').textContent = 'Failed.';
    showAlert(`Immunization failed: ${r.error?.message ?? 'unknown error'}`);
  }
}

$('immunize').addEventListener('click', () => void immunize());
$('cancel').addEventListener('click', async () => {
  if (!job) return;
  $<HTMLButtonElement>('cancel').disabled = true;
  $('progress-text').textContent = 'Canceling…';
  try {
    await api.cancel(job.id);
  } catch (e) {
    // 409: it finished meanwhile; the stream's end event shows the outcome.
    if (!(e instanceof ApiError && e.code === 'E_CONFLICT')) {
      showAlert(`Could not cancel: ${errorText(e)}`);
      $<HTMLButtonElement>('cancel').disabled = false;
    }
  }
});

// ---------------------------------------------------------------- result

async function loadPixels(src: ImageBitmap | Blob, w: number, h: number): Promise<ImageData> {
  const bmp = src instanceof Blob ? await createImageBitmap(src, { imageOrientation: 'from-image' }) : src;
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const g = c.getContext('2d', { willReadFrequently: true })!;
  g.imageSmoothingQuality = 'high';
  g.drawImage(bmp, 0, 0, w, h);
  if (src instanceof Blob) bmp.close();
  return g.getImageData(0, 0, w, h);
}

async function showResult(r: JobRecord<ImmunizationResult>): Promise<void> {
  if (!photo || !r.result || !r.links.result) return;
  const res = r.result;
  $<HTMLImageElement>('original-img').src = photo.url;
  $<HTMLImageElement>('result-img').src = r.links.result;
  const dl = $<HTMLAnchorElement>('download');
  dl.href = r.links.result;
  dl.download = `${photo.file.name.replace(/\.[^.]*$/, '') || 'photo'}.immunized.png`;

  const m: [string, string][] = [];
  if (res.psnr !== undefined) m.push(['PSNR of the change', fmtDb(res.psnr)]);
  if (res.ssim !== undefined) m.push(['SSIM', res.ssim.toFixed(3)]);
  if (res.linf255 !== undefined) m.push(['Largest change', `${res.linf255.toFixed(0)}/255`]);
  const rec = res.reconstruction;
  if (rec) {
    m.push([`${rec.model} sees the original at`, fmtDb(rec.cleanPsnr)]);
    m.push([`${rec.model} sees the immunized photo at`, fmtDb(rec.immunizedPsnr)]);
  }
  const dlEl = $('metrics');
  dlEl.replaceChildren(
    ...m.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      return [dt, dd];
    }),
  );
  $('metrics-help').textContent =
    'PSNR above about 30 dB and SSIM near 1 mean the change is hard to see.' +
    (rec
      ? ` How well the model reconstructs the photo is the protection: ${fmtDb(rec.immunizedPsnr)} for the immunized photo against ${fmtDb(rec.cleanPsnr)} for the original — the lower, the less the model can see, and the worse its edits.`
      : '') +
    (rec && rec.cleanPsnr - rec.immunizedPsnr < 2
      ? ' Here the difference is small: this is weak protection. More steps, a stronger intensity or a larger painted region give more.'
      : '');
  $('result-section').hidden = false;
  $('edit-section').hidden = false;
  $('check-section').hidden = false;
  $('result-h').scrollIntoView({ behavior: 'smooth', block: 'start' });

  try {
    const blob = await (await fetch(r.links.result)).blob();
    const after = await loadPixels(blob, res.width, res.height);
    const before = await loadPixels(photo.bitmap, res.width, res.height);
    diff.set(before, after);
    const resized = res.width !== photo.bitmap.width || res.height !== photo.bitmap.height;
    $('diff-note').textContent =
      `Largest change in the file: ${diff.maxChange()}/255 per channel.` +
      (resized
        ? ` The photo was downscaled to ${res.width} × ${res.height}; the difference is against a browser-resized original, so it also shows resampling differences.`
        : '');
    updateGain();
  } catch (e) {
    $('diff-note').textContent = `The difference view could not be built: ${errorText(e)}`;
  }
}

function updateGain(): void {
  diff.gain = Number($<HTMLInputElement>('diff-gain').value);
  $('diff-gain-out').textContent = `${diff.gain}×`;
  $('diff-gain').setAttribute('aria-valuetext', `${diff.gain} times`);
  diff.render();
}
$('diff-gain').addEventListener('input', updateGain);
$('diff-zoom').addEventListener('input', () => {
  // Keep the point at the centre of the view where it is while zooming.
  const box = $('diff-scroll');
  const cx = (box.scrollLeft + box.clientWidth / 2) / Math.max(1, box.scrollWidth);
  const cy = (box.scrollTop + box.clientHeight / 2) / Math.max(1, box.scrollHeight);
  diff.zoom = 2 ** Number($<HTMLInputElement>('diff-zoom').value);
  $('diff-zoom-out').textContent = `${diff.zoom}×`;
  $('diff-zoom').setAttribute('aria-valuetext', `${diff.zoom} times`);
  diff.layout();
  box.scrollLeft = cx * box.scrollWidth - box.clientWidth / 2;
  box.scrollTop = cy * box.scrollHeight - box.clientHeight / 2;
});
window.addEventListener('resize', () => diff.layout());
$('diff-gain-out').textContent = `${$<HTMLInputElement>('diff-gain').value}×`;

// ---------------------------------------------------------------- JPEG check

$('jpeg-quality').addEventListener('input', () => {
  $('jpeg-quality-out').textContent = $<HTMLInputElement>('jpeg-quality').value;
});
$('check-run').addEventListener('click', async () => {
  if (!job || job.status !== 'completed') return;
  const q = Number($<HTMLInputElement>('jpeg-quality').value);
  const spec = `jpeg:${q}`;
  const run = $<HTMLButtonElement>('check-run');
  run.disabled = true;
  $('check-result').hidden = true;
  $('check-status').textContent = `Re-saving as JPEG at quality ${q} and measuring…`;
  checkWatch?.close();
  let rec: JobRecord<CheckResult>;
  try {
    rec = await api.check(job.id, [spec]);
  } catch (e) {
    run.disabled = false;
    $('check-status').textContent =
      e instanceof ApiError && e.code === 'E_NOT_IMPLEMENTED'
        ? `This check is not available for this result: ${e.message}`
        : `The check could not start: ${errorText(e)}`;
    return;
  }
  checkWatch = watchJob<CheckResult>(api, rec, {
    record: (r) => {
      if (r.status === 'queued') $('check-status').textContent = 'The check is waiting in the queue…';
    },
    progress: () => {},
    end: (r) => {
      run.disabled = false;
      checkWatch = null;
      showCheck(r, q);
    },
    lost: (e) => {
      run.disabled = false;
      $('check-status').textContent = `Lost contact with the check: ${errorText(e)}`;
    },
  });
});

function showCheck(r: JobRecord<CheckResult>, q: number): void {
  const p = r.result?.purifications[0];
  if (r.status !== 'completed' || !r.result || !p) {
    $('check-status').textContent =
      r.status === 'canceled' ? 'The check was canceled.' : `The check failed: ${r.error?.message ?? 'unknown error'}`;
    return;
  }
  const pct = Math.round(p.protectionRemaining * 100);
  $('check-status').textContent = 'Check complete.';
  const meter = $<HTMLMeterElement>('check-meter');
  meter.value = p.protectionRemaining;
  meter.textContent = `${pct}%`;
  // protectionRemaining is relative to what the immunization achieved; when that is small (few
  // steps, a small painted region) the percentage says little, and the page says so instead.
  const gained = r.result.clean.reconstructionPsnr - r.result.immunized.reconstructionPsnr;
  $('check-summary').textContent =
    gained < 2
      ? `After re-saving as JPEG at quality ${q}, about ${pct}% of the protection remains — but the immunization itself lowered how well ` +
        `the model sees the photo by only ${gained.toFixed(1)} dB, so there was little protection to keep. More steps, a stronger intensity ` +
        'or a larger painted region give more.'
      : `After re-saving as JPEG at quality ${q}, about ${pct}% of the protection remains — ` +
        (p.protected
          ? 'the photo is still protected against this model.'
          : 'not enough: the model sees the photo almost as if it had never been immunized.');
  const rows: [string, string][] = [
    ['Model sees the original at', fmtDb(r.result.clean.reconstructionPsnr)],
    ['Model sees the immunized photo at', fmtDb(r.result.immunized.reconstructionPsnr)],
    [`Model sees it after JPEG ${q} at`, fmtDb(p.reconstructionPsnr)],
    [`PSNR of the JPEG ${q} copy`, fmtDb(p.psnr)],
  ];
  $('check-details').replaceChildren(
    ...rows.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      return [dt, dd];
    }),
  );
  $('check-result').hidden = false;
}

void init();
