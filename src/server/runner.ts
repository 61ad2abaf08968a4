/**
 * The job runner: a child process that runs jobs one after another. Attacks are long synchronous
 * libtorch loops; running them here keeps the API's (and the BullMQ worker's) event loop free for
 * requests, SSE and queue-lock renewal, and lets a cancel or a crash take down only this process.
 * A runner that finished a job waits for the next (execute.ts keeps it): loading the code and
 * libtorch costs about as much CPU as a small job, so a fresh process per job would double it.
 *
 * An immunization runs the protect library (src/protect) with the resolved request the API stored
 * — the same functions `immunize protect` calls, so the PNG and sidecar are byte-for-byte what the
 * command writes. No argv is built and nothing is parsed out of text. Messages (IPC, typed below):
 *   parent → runner  { type: 'run', root, id, parameters? }   (parameters: an immunization's resolved request)
 *   runner → parent  { type: 'ready' } once, then per job { type: 'progress', step, steps, loss, etaMs }…   { type: 'done', result }   { type: 'error', code, message }
 * The runner exits when its parent goes away (an orphan stops at its next attack step).
 *
 * Started as: node runner.js  with the settings in IMMUNIZE_RUNNER (JSON).
 */
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ImmunizeError } from '../errors.js';
import { probeImage, restrictDecodersToUploadFormats } from '../io/images.js';
import {
  jobStepTimes,
  loadProtectModels,
  preflightPhoto,
  protectImage,
  readProtectInputs,
  sha256File,
  fingerprintFiles,
  sidecarParameters,
  writeProtected,
  type ProtectRequest,
  type ProtectStep,
} from '../protect/index.js';
import { Storage, type JobRecord } from './storage.js';
import type { ModelEntry } from './models.js';
import { scrubMessage } from './scrub.js';
import type { EditingModels } from './edits.js';

export interface RunnerSettings {
  device: string;
  maxPixels: number;
  models: ModelEntry[];
  /** Editing pipelines for edit jobs (edit-job.ts); absent: none. */
  editing?: EditingModels;
}

export type RunnerMessage =
  | { type: 'ready' }
  | { type: 'progress'; step: number; steps: number; loss: number | null; etaMs?: number | null }
  | { type: 'done'; result: Record<string, unknown> }
  | { type: 'error'; code: string; message: string };

/** The process that started this runner. */
const PARENT_PID = process.ppid;

/**
 * Whether the parent is gone. An attack step is synchronous libtorch work and its awaits resolve
 * as microtasks, so the IPC channel's 'disconnect' is not seen until the job ends, and Node's
 * process.ppid is read once at start-up: the kernel is asked instead, at every step. On Linux the
 * parent pid in /proc/self/stat changes at once when the parent dies (we are re-parented);
 * elsewhere signal 0 tells whether the parent's pid still exists.
 */
function orphaned(): boolean {
  if (!process.connected) return true;
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8'); // "pid (comm) state ppid …"
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== PARENT_PID;
  } catch {
    try {
      process.kill(PARENT_PID, 0);
      return false;
    } catch {
      return true;
    }
  }
}

function send(m: RunnerMessage): Promise<void> {
  return new Promise((res) => {
    if (orphaned()) process.exit(3);
    process.send!(m, () => res());
  });
}

function modelSpec(settings: RunnerSettings, id: unknown): string {
  const m = settings.models.find((e) => e.id === id);
  if (m === undefined)
    throw new ImmunizeError('E_MODEL_UNAVAILABLE', `this worker does not offer the model '${String(id)}'`);
  return m.spec;
}

/** The job's resolved request on this worker: its model id mapped to the worker's model, the worker's device and limit. */
function requestOnThisWorker(p: ProtectRequest | undefined, settings: RunnerSettings): ProtectRequest {
  if (p === undefined)
    throw new ImmunizeError(
      'E_INTERNAL',
      'the job has no resolved parameters (its record was made by an older version); submit it again',
    );
  return {
    ...p,
    model: p.model === null ? null : modelSpec(settings, p.model),
    device: settings.device,
    maxPixels: settings.maxPixels,
  };
}

async function immunize(
  storage: Storage,
  r: JobRecord,
  parameters: ProtectRequest | undefined,
  settings: RunnerSettings,
  onStep: (s: ProtectStep) => void,
): Promise<Record<string, unknown>> {
  const req = requestOnThisWorker(parameters, settings);
  const image = storage.file(r.id, r.input!.file);
  const mask = r.input!.mask === null ? null : storage.file(r.id, r.input!.mask);
  const probe = await preflightPhoto(image, req, mask === null ? null : await probeImage(mask), mask ?? undefined);
  using models = await loadProtectModels(req);
  using inputs = await readProtectInputs({ image, mask }, req, probe);
  const sidecarParams = sidecarParameters(
    req,
    { ...fingerprintFiles(req.model, { mask }), inputSha256: sha256File(image) },
    'png',
  );
  // The estimate from this worker's own record of step times, announced as the first progress event.
  const times = jobStepTimes(req, inputs.image);
  const result = await protectImage(inputs, models, req, {
    parameters: sidecarParams,
    inputPath: resolve(image),
    ...(parameters!.model === null ? {} : { modelName: parameters!.model }),
    onStep,
    estimateMs: times.estimate?.ms ?? null,
  });
  const sidecar = writeProtected(result, storage.file(r.id, 'result.png'));
  const unrecorded = times.record(sidecar.timing.attackMs, sidecar.attack?.stepsTaken ?? 0);
  if (unrecorded !== null) process.stderr.write(`immunize runner: ${unrecorded}\n`);
  const rec = sidecar.results.reconstruction;
  return {
    width: sidecar.output.width,
    height: sidecar.output.height,
    bytes: result.bytes.length,
    sha256: createHash('sha256').update(result.bytes).digest('hex'),
    linf255: sidecar.results.linf255,
    psnr: sidecar.results.psnr,
    ssim: sidecar.results.ssim,
    // Visibility and protection side by side: the target (when one was set) and the reconstruction gap.
    visibility: sidecar.results.visibility ?? null,
    reconstruction: rec === null ? null : { ...rec, model: parameters!.model },
    protectionGapDb: rec === null ? null : rec.cleanPsnr - rec.immunizedVsOriginalPsnr,
    attack:
      sidecar.attack === null
        ? null
        : {
            losses: sidecar.attack.losses,
            finalLoss: sidecar.attack.finalLoss,
            stepsTaken: sidecar.attack.stepsTaken,
            stoppedBy: sidecar.attack.stoppedBy,
          },
    timing: sidecar.timing,
  };
}

async function check(
  storage: Storage,
  r: JobRecord,
  settings: RunnerSettings,
  onStep: (i: number, n: number) => void,
): Promise<Record<string, unknown>> {
  const parent = storage.read(r.parent!);
  if (parent === null || parent.status !== 'completed')
    throw new ImmunizeError('E_NOT_READY', 'the immunization is gone or not completed');
  const { runCheck } = await import('./check.js');
  return runCheck({
    original: storage.file(parent.id, parent.input!.file),
    immunized: storage.file(parent.id, 'result.png'),
    size: typeof parent.options['size'] === 'number' ? parent.options['size'] : null,
    modelId: String(parent.options['model']),
    modelSpec: modelSpec(settings, parent.options['model']),
    device: settings.device,
    maxPixels: settings.maxPixels,
    purifications: r.options['purifications'] as string[],
    immunization: parent.id,
    onStep,
  });
}

/** Error messages name files by their own names and models by their ids, never by server paths (scrub.ts). */
function scrub(message: string, storage: Storage, id: string, settings: RunnerSettings): string {
  const editing = [settings.editing?.img2img, settings.editing?.inpaint].filter(
    (m): m is ModelEntry => m !== null && m !== undefined,
  );
  return scrubMessage(message, {
    storageRoot: storage.root,
    jobDir: storage.dir(id),
    models: [...(settings.models ?? []), ...editing],
  });
}

export interface RunRequest {
  type: 'run';
  root: string;
  id: string;
  /** An immunization's resolved request (its model as the id; the runner maps it to this worker's model). */
  parameters?: ProtectRequest;
}

let progress: ((step: number, steps: number, loss: number | null, etaMs?: number | null) => void) | null = null;

async function runJob({ root, id, parameters }: RunRequest, settings: RunnerSettings): Promise<void> {
  const storage = new Storage(root);
  const r = storage.read(id);
  if (r === null) {
    await send({ type: 'error', code: 'E_NOT_FOUND', message: 'the job is gone' });
    return;
  }
  logStart(id);
  let last = 0;
  let pending: Promise<void> = Promise.resolve();
  progress = (step, steps, loss, etaMs) => {
    // An orphan (its worker was killed) stops at the next step instead of computing for nobody.
    if (orphaned()) process.exit(3);
    const now = performance.now();
    if (now - last < 100 && step < steps) return;
    last = now;
    pending = send({ type: 'progress', step, steps, loss, ...(etaMs === undefined ? {} : { etaMs }) });
  };
  try {
    const result =
      r.kind === 'edit'
        ? await (
            await import('./edit-job.js')
          ).runEdit(storage, r, settings.editing, settings.device, settings.maxPixels, (i, n) => progress?.(i, n, null))
        : r.kind === 'check'
          ? await check(storage, r, settings, (i, n) => progress?.(i, n, null))
          : await immunize(storage, r, parameters, settings, (s) => progress?.(s.step, s.steps, s.loss, s.etaMs));
    await pending;
    progress = null;
    await send({ type: 'done', result });
  } catch (e) {
    progress = null;
    const err = e as ImmunizeError;
    const code = typeof err.code === 'string' && err.code.startsWith('E_') ? err.code : 'E_INTERNAL';
    await send({
      type: 'error',
      code,
      message: scrub(String(err.message ?? e).split('\n')[0]!, storage, r.id, settings),
    });
  }
}

/**
 * Opt-in audit of executions, independent of the job record: with $IMMUNIZE_RUNNER_START_LOG set,
 * one JSON line {id, pid, time} is appended to that file as each job starts (the exactly-once tests
 * count them).
 */
function logStart(id: string): void {
  const file = process.env['IMMUNIZE_RUNNER_START_LOG'];
  if (file) appendFileSync(file, `${JSON.stringify({ id, pid: process.pid, time: new Date().toISOString() })}\n`);
}

function main(): void {
  restrictDecodersToUploadFormats(); // the runner decodes the uploads the API accepted, and only those formats
  const settings = JSON.parse(process.env['IMMUNIZE_RUNNER'] ?? '{}') as RunnerSettings;
  let queue: Promise<void> = Promise.resolve();
  process.on('message', (msg: unknown) => {
    const m = msg as RunRequest | null;
    if (m?.type !== 'run') return;
    queue = queue
      .then(() => runJob(m, settings))
      .catch((e: unknown) => {
        process.stderr.write(`immunize runner: ${(e as Error).stack ?? String(e)}\n`);
        process.exit(1);
      });
  });
  process.on('disconnect', () => process.exit(3));
  // Messages that arrive before a listener exists are dropped: the parent waits for this one.
  void send({ type: 'ready' });
}

main();
