/**
 * The page served by `immunize serve` at `/`: choose a photo, paint what to protect, pick a
 * preset, model and intensity, immunize with live progress, compare, download, and check how much
 * protection survives JPEG re-compression. It talks only to the same-origin v1 API (docs/api.md).
 */
import { Api, ApiError, backoffMs, transient, watchJob } from './api.js';
import type { CheckResult, ImmunizationResult, JobRecord, Progress, ServiceConfig, Watch } from './api.js';
import { DiffView } from './diff.js';
import { EditPanel } from './edit.js';
import { checkReading, WEAK_DB } from './check.js';
import { definitionList, fmtBytes, fmtDb, fmtDuration, fmtPixels } from './format.js';
import { MaskEditor } from './mask.js';
import { EpsPreview } from './preview.js';
import {
  METHOD_HELP,
  PRESET_HELP,
  methodLabel,
  modelHelp,
  modelLabel,
  presetExactly,
  visibilityWords,
} from './words.js';

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page element #${id} is missing`);
  return el as T;
}

const api = new Api();
let config: ServiceConfig | null = null;
let photo: { file: File; bitmap: ImageBitmap; url: string } | null = null;
/** The download's object URL (the PNG fetched once; named after the photo, not the server's job id). */
let downloadUrl: string | null = null;
/** The photo's file name, kept with the job so a recovered job still downloads under it. */
let photoName = '';
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
  for (const p of c.presets) preset.add(new Option(p.id, p.id, false, p.id === (c.defaults.preset ?? 'balanced')));
  const model = $<HTMLSelectElement>('model');
  for (const m of c.models) model.add(new Option(modelLabel(m.id), m.id, false, m.default === true));
  const method = $<HTMLSelectElement>('method');
  $<HTMLInputElement>('steps').max = String(c.limits.maxSteps);
  $<HTMLInputElement>('seed').value = String(c.defaults.seed ?? 0);
  preset.addEventListener('change', presetChanged);
  model.addEventListener('change', () => {
    $('model-help').textContent = modelHelp(model.value, c.models.find((m) => m.id === model.value)?.description);
    fillMethods(c, model.value);
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
  await resumeFromUrl();
}

/**
 * The methods this server can run with `modelId` (diffusion only with an inpainting pipeline);
 * baselines such as `noise`, which protect nothing, apart under "For comparison only".
 */
function fillMethods(c: ServiceConfig, modelId: string): void {
  const method = $<HTMLSelectElement>('method');
  const was = method.value || (c.defaults.method ?? 'encoder');
  const runs = c.models.find((m) => m.id === modelId)?.methods ?? c.methods;
  const offered = c.methods.filter((m) => runs.includes(m));
  const baselines = c.baselines ?? ['noise'];
  method.replaceChildren();
  for (const m of offered.filter((x) => !baselines.includes(x))) method.add(new Option(methodLabel(m), m));
  const compare = offered.filter((x) => baselines.includes(x));
  if (compare.length > 0) {
    const group = document.createElement('optgroup');
    group.label = 'For comparison only';
    for (const m of compare) group.append(new Option(methodLabel(m), m));
    method.append(group);
  }
  method.value = offered.includes(was) ? was : (offered.find((m) => !baselines.includes(m)) ?? '');
  $('method-help').textContent = METHOD_HELP[method.value] ?? '';
}

function presetChanged(): void {
  const id = $<HTMLSelectElement>('preset').value;
  const p = config?.presets.find((x) => x.id === id);
  $('preset-help').textContent = [PRESET_HELP[id], p ? presetExactly(p) : ''].filter(Boolean).join(' ');
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
  photoName = file.name;
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

/**
 * The running job lives in the page's address (`#job=ID&token=T`, the record's read token), so a
 * reload, a restarted browser or a bookmark finds it again; the photo's name is kept in
 * localStorage for the download. The hash never reaches the server or a Referer.
 */
function rememberJob(r: JobRecord): void {
  const token = new URL(r.links.self, location.href).searchParams.get('token') ?? '';
  history.replaceState(null, '', `#job=${encodeURIComponent(r.id)}&token=${encodeURIComponent(token)}`);
  try {
    localStorage.setItem(`immunize-name:${r.id}`, photoName);
  } catch {
    /* storage disabled: the download falls back to a generic name */
  }
}

function forgetJob(): void {
  if (location.hash.startsWith('#job=')) history.replaceState(null, '', location.pathname + location.search);
}

/** Follows the job named in the address, if any: after a reload, or when someone comes back. */
async function resumeFromUrl(): Promise<void> {
  const h = new URLSearchParams(location.hash.slice(1));
  const id = h.get('job');
  if (!id) return;
  const self = `/v1/immunizations/${encodeURIComponent(id)}?token=${encodeURIComponent(h.get('token') ?? '')}`;
  $('run-section').hidden = false;
  $('progress-box').hidden = false;
  $('progress-text').textContent = 'Finding your job again…';
  let r: JobRecord<ImmunizationResult> | null = null;
  // While the service is down (restarting), keep asking with a growing wait, and say so.
  for (let tries = 1; r === null; tries++) {
    try {
      r = await api.get<ImmunizationResult>(self);
    } catch (e) {
      if (transient(e)) {
        const wait = backoffMs(tries);
        $('progress-text').textContent =
          `Cannot reach the service to find your job; trying again in ${fmtDuration(wait)}…`;
        await new Promise((ok) => setTimeout(ok, wait));
        continue;
      }
      $('progress-box').hidden = true;
      forgetJob();
      showAlert(
        e instanceof ApiError && e.status === 404
          ? 'The job in this page’s address is gone: its results were deleted, or it belongs to another service. Choose the photo again.'
          : `Could not find the job in this page’s address: ${errorText(e)}`,
      );
      return;
    }
  }
  try {
    photoName = localStorage.getItem(`immunize-name:${r.id}`) ?? '';
  } catch {
    photoName = '';
  }
  job = r;
  $<HTMLButtonElement>('immunize').disabled = true;
  if (r.status === 'completed' || r.status === 'failed' || r.status === 'canceled') finished(r);
  else follow(r);
}

function resetJob(): void {
  watch?.close();
  watch = null;
  checkWatch?.close();
  checkWatch = null;
  editPanel.reset();
  job = null;
  forgetJob();
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = null;
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
  // The button just disabled itself; without this, focus would fall to the page body.
  $('progress-text').focus();
  try {
    const maskBlob = mask ? await mask.toBlob() : null;
    job = await api.create(fields, photo.file, photo.file.name, maskBlob ?? undefined);
  } catch (e) {
    setRunning(false);
    $('progress-box').hidden = true;
    showAlert(errorText(e));
    return;
  }
  rememberJob(job);
  follow(job);
}

function follow(rec: JobRecord<ImmunizationResult>): void {
  setRunning(true);
  showRecord(rec);
  watch = watchJob<ImmunizationResult>(api, rec, {
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
    offline: (_e, retryMs) => {
      // Replaces the last progress line: its "time left" is no longer true.
      $('progress-text').textContent =
        `${lostContact(retryMs)} If it restarts, it finishes your job and this page shows the result.`;
    },
    back: () => {
      startedAt = 0;
      $('progress-text').textContent = 'Back in contact with the service.';
    },
  });
}

/** What a watch says while the service cannot be reached (`retryMs`: null = the stream reconnects by itself). */
function lostContact(retryMs: number | null): string {
  return `Lost contact with the service; ${retryMs === null ? 'reconnecting…' : `trying again in ${fmtDuration(retryMs)}…`}`;
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

/**
 * The result. `photo` is absent when the job was found again from the page's address (a reload):
 * the immunized photo, its numbers and the download are shown; the side-by-side original and the
 * difference view need the photo, which never left this browser but for the upload.
 */
async function showResult(r: JobRecord<ImmunizationResult>): Promise<void> {
  if (!r.result || !r.links.result) return;
  const res = r.result;
  $('original-fig').hidden = photo === null;
  if (photo) $<HTMLImageElement>('original-img').src = photo.url;
  $<HTMLImageElement>('result-img').src = r.links.result;
  const dl = $<HTMLAnchorElement>('download');
  dl.href = r.links.result;
  dl.download = `${photoName.replace(/\.[^.]*$/, '') || 'photo'}.immunized.png`;

  const m: [string, string][] = [];
  const rec = res.reconstruction;
  // Both against the original photo: the measurement the check repeats (its "as uploaded" row).
  const immRec = rec ? (rec.immunizedVsOriginalPsnr ?? rec.immunizedPsnr) : null;
  // Visibility and protection side by side, first: what the person gave, and what it bought.
  if (res.ssim !== undefined) {
    const v = res.visibility;
    const target = v ? ` (asked: at least ${v.minSsim}${v.met ? ', met' : ', not met'})` : '';
    m.push(['Visibility', `${visibilityWords(res.ssim)} — SSIM ${res.ssim.toFixed(3)} to the original${target}`]);
  }
  if (rec && immRec !== null) {
    const gap = rec.cleanPsnr - immRec;
    m.push([
      'Protection',
      `${gap < WEAK_DB ? 'weak' : gap < 2 * WEAK_DB ? 'moderate' : 'strong'} — the model redraws it ${fmtDb(gap)} worse than the original`,
    ]);
  }
  if (res.psnr !== undefined) m.push(['How close to the original (PSNR)', fmtDb(res.psnr)]);
  if (res.linf255 !== undefined)
    m.push(['Largest change of any colour value', `${res.linf255.toFixed(0)} of 255 levels`]);
  if (rec && immRec !== null) {
    m.push(['The model redraws the original at', fmtDb(rec.cleanPsnr)]);
    m.push(['The model redraws the immunized photo at', fmtDb(immRec)]);
  }
  definitionList($('metrics'), m);
  $('metrics-help').textContent =
    'PSNR above about 30 dB and SSIM near 1 mean the change is hard to see.' +
    (rec && immRec !== null
      ? ` The protection is how much worse the model (${modelLabel(rec.model)}) redraws the photo once immunized: ` +
        `${fmtDb(immRec)} against ${fmtDb(rec.cleanPsnr)} for the original (higher dB = more faithful). ` +
        'The worse it redraws the photo, the worse its edits of it.'
      : '') +
    (rec && immRec !== null && rec.cleanPsnr - immRec < WEAK_DB
      ? ' Here the difference is small: this is weak protection. More steps, a stronger intensity or a larger painted region give more.'
      : '');
  $('result-section').hidden = false;
  $('edit-section').hidden = false;
  $('check-section').hidden = false;
  $('result-h').scrollIntoView({ behavior: 'smooth', block: 'start' });
  // Focus follows the job to its result, unless the person has moved it elsewhere meanwhile.
  if (document.activeElement === document.body || document.activeElement === $('progress-text')) $('result-h').focus();

  $('diff-box').hidden = photo === null;
  try {
    const blob = await (await fetch(r.links.result)).blob();
    // Served with the server's own file name (Content-Disposition); a local copy takes the photo's.
    if (downloadUrl) URL.revokeObjectURL(downloadUrl);
    downloadUrl = URL.createObjectURL(blob);
    dl.href = downloadUrl;
    if (!photo) {
      $('diff-note').textContent = 'Choose the photo again to compare it with the immunized one.';
      return;
    }
    const after = await loadPixels(blob, res.width, res.height);
    const before = await loadPixels(photo.bitmap, res.width, res.height);
    diff.set(before, after);
    const resized = res.width !== photo.bitmap.width || res.height !== photo.bitmap.height;
    $('diff-note').textContent =
      `Largest change in the file: ${diff.maxChange()} of 255 levels.` +
      (resized
        ? ` The photo was downscaled to ${res.width} × ${res.height}; the difference is against a browser-resized original, so it also shows resampling differences.`
        : '');
    // Amplify so the largest change just fills the range: a fixed 8× saturated every ±16 change.
    $<HTMLInputElement>('diff-gain').value = String(autoGain(diff.maxChange()));
    updateGain();
  } catch (e) {
    $('diff-note').textContent = `The difference view could not be built: ${errorText(e)}`;
  }
}

/** The largest amplification that keeps a change of `maxChange` levels inside 0…255 around 128. */
function autoGain(maxChange: number): number {
  const slider = $<HTMLInputElement>('diff-gain');
  return Math.min(Number(slider.max), Math.max(1, Math.floor(127 / Math.max(1, maxChange))));
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
  // Past the size bound the zoom stops growing; say the zoom actually shown.
  const shown = +diff.layout().toFixed(1);
  $('diff-zoom-out').textContent = `${shown}×`;
  $('diff-zoom').setAttribute('aria-valuetext', `${shown} times`);
  box.scrollLeft = cx * box.scrollWidth - box.clientWidth / 2;
  box.scrollTop = cy * box.scrollHeight - box.clientHeight / 2;
});
window.addEventListener('resize', () => diff.layout());
$('diff-gain-out').textContent = `${$<HTMLInputElement>('diff-gain').value}×`;

// ---------------------------------------------------------------- check

$('jpeg-quality').addEventListener('input', () => {
  $('jpeg-quality-out').textContent = $<HTMLInputElement>('jpeg-quality').value;
});
$('check-run').addEventListener('click', async () => {
  if (!job || job.status !== 'completed') return;
  const q = Number($<HTMLInputElement>('jpeg-quality').value);
  // JPEG at the chosen quality, and the adaptive purifier (IMPRESS) as the server bounds it.
  const specs = [`jpeg:${q}`, ...(config?.purifications ?? []).filter((s) => s.startsWith('impress'))];
  const run = $<HTMLButtonElement>('check-run');
  run.disabled = true;
  $('check-result').hidden = true;
  $('check-status').textContent =
    `Re-saving as JPEG at quality ${q}` +
    (specs.length > 1 ? ', letting an attacker try to wash the protection out,' : '') +
    ' and measuring…';
  checkWatch?.close();
  let rec: JobRecord<CheckResult>;
  try {
    rec = await api.check(job.id, specs);
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
    offline: (_e, retryMs) => {
      $('check-status').textContent = `${lostContact(retryMs)} The check goes on where the service runs it.`;
    },
    back: () => {
      $('check-status').textContent = 'Back in contact with the service; measuring…';
    },
  });
});

function showCheck(r: JobRecord<CheckResult>, q: number): void {
  const reading = r.status === 'completed' && r.result ? checkReading(r.result, q) : null;
  if (!reading) {
    $('check-status').textContent =
      r.status === 'canceled' ? 'The check was canceled.' : `The check failed: ${r.error?.message ?? 'unknown error'}`;
    return;
  }
  $('check-status').textContent =
    'Check complete. It measures the saved PNG again, as anyone downloading it would get it.';
  const meter = $<HTMLMeterElement>('check-meter');
  // No meter for a weak immunization: a full bar of almost nothing would read as strong protection.
  meter.hidden = reading.share === null;
  meter.value = reading.share ?? 0;
  meter.textContent = `${Math.round((reading.share ?? 0) * 100)}%`;
  $('check-summary').textContent = reading.summary;
  definitionList($('check-details'), reading.rows);
  $('check-result').hidden = false;
}

void init();
