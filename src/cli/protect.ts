/**
 * `immunize protect`: the command-line door to the protect job (src/protect). This file keeps
 * only what belongs to a command: its flags (derived from the parameter schema), input expansion,
 * output paths, resuming batches and printing. Every photo is protected at its own size, written
 * losslessly (PNG) with an XMP label and a JSON sidecar; a photo whose output and sidecar exist
 * with the same parameters is skipped.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { ImmunizeError, UsageError } from '../errors.js';
import { formatFromPath, probeImage, readImage } from '../io/images.js';
import {
  canonical,
  checkImmunized,
  estimateText,
  jobStepTimes,
  ParameterError,
  checkPathFor,
  loadProtectModels,
  parametersFor,
  preflightPhoto,
  protectImage,
  readProtectInputs,
  resolveProtectParameters,
  sha256File,
  fingerprintFiles,
  sidecarParameters,
  sidecarPathFor,
  writeCheck,
  writeProtected,
  type ProtectSidecar,
} from '../protect/index.js';
import { setNumThreads } from '../torch/index.js';
import { parseCommandArgs, parseInteger } from './args.js';
import { expandInputs, planOutputs } from './inputs.js';
import { PROTECT_HELP } from './protect-help.js';
import { printResult, progressFor } from './protect-print.js';

const SPECS = parametersFor('cli');

/** A parameter refusal as the command line says it: `--step-size: …`. */
function asUsage(e: unknown): unknown {
  if (!(e instanceof ParameterError)) return e;
  return new UsageError(e.render((name) => `--${SPECS.find((p) => p.name === name)?.flag ?? name}`));
}

interface Job {
  input: string;
  output: string;
  sidecar: string;
  params: ProtectSidecar['parameters'] | null;
  checkOnly?: boolean;
}

export const command = {
  summary: 'immunize photos against AI editing (PNG labelled as immunized + JSON sidecar)',
  async run(args: string[]): Promise<number> {
    const flags = Object.fromEntries(
      SPECS.map((p) => [p.flag, { type: p.type === 'boolean' ? ('boolean' as const) : ('string' as const) }]),
    );
    const { values: v, positionals } = parseCommandArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        ...flags,
        output: { type: 'string', short: 'o' },
        mask: { type: 'string' },
        threads: { type: 'string' },
        force: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    const values = v as Record<string, string | boolean | undefined>;
    if (values['help']) {
      console.log(PROTECT_HELP);
      return 0;
    }
    if (positionals.length === 0) throw new UsageError('no input image given (immunize protect IMAGE... ; see --help)');

    // ---- parameters, all checked before anything is read or loaded ----
    const maskPath = values['mask'] as string | undefined;
    let r;
    try {
      r = resolveProtectParameters(Object.fromEntries(SPECS.map((p) => [p.name, values[p.flag]])), {
        door: 'cli',
        hasMask: maskPath !== undefined,
      });
    } catch (e) {
      throw asUsage(e);
    }
    const threads = parseInteger('threads', values['threads'] as string | undefined, { min: 1, max: 4096 });
    if (threads !== undefined) setNumThreads(threads);
    const targetPath = r.target === 'gray' || r.target === 'zeros' ? null : r.target;
    if (targetPath !== null && !existsSync(targetPath))
      throw new UsageError(`--target: expected gray, zeros or an image path, but '${targetPath}' does not exist`);
    if (maskPath !== undefined && !existsSync(maskPath)) throw new UsageError(`--mask: file not found: ${maskPath}`);

    // ---- inputs and outputs ----
    const { files, notes } = expandInputs(positionals);
    for (const n of notes) process.stderr.write(`note: ${n}\n`);
    const out = values['output'] as string | undefined;
    const single =
      files.length === 1 &&
      positionals.length === 1 &&
      !(existsSync(positionals[0]!) && statSync(positionals[0]!).isDirectory());
    const jobs: Job[] = planOutputs(files, out, single).map((p) => ({
      ...p,
      sidecar: sidecarPathFor(p.output),
      params: null,
    }));
    const format = formatFromPath(jobs[0]!.output);
    if (format !== 'png') {
      process.stderr.write(
        `warning: writing ${format === 'jpeg' ? 'JPEG' : 'WebP'} as asked (${basename(jobs[0]!.output)}), but lossy re-compression weakens the protection: it discards exactly the small high-frequency perturbation that immunization adds (Salman et al. 2023, §5). The sidecar reports L∞/PSNR of the file as written. Use .png to keep the protection intact.\n`,
      );
    }
    const fingerprints = fingerprintFiles(r.model, { mask: maskPath, target: targetPath });
    const maskProbe = maskPath === undefined ? null : await probeImage(maskPath);

    // ---- preflight: every photo readable, small enough, mask of its size; resumable skip ----
    let failures = 0;
    const fail = (job: Job, e: unknown): void => {
      failures++;
      const err = e instanceof ImmunizeError ? e : new ImmunizeError('E_INTERNAL', (e as Error).message ?? String(e));
      if (single) throw asUsage(err);
      const msg = err.message.includes(job.input) ? err.message : `${job.input}: ${err.message}`;
      process.stderr.write(`immunize protect: ${msg} [${err.code}]\n`);
    };
    const todo: Job[] = [];
    let skipped = 0;
    for (const job of jobs) {
      try {
        if (statSync(job.input).size === 0)
          throw new ImmunizeError('E_IMAGE', `${job.input}: the file is empty (0 bytes)`);
        await preflightPhoto(job.input, r, maskProbe, maskPath);
        job.params = sidecarParameters(r, { ...fingerprints, inputSha256: sha256File(job.input) }, format);
        if (!values['force'] && existsSync(job.output) && existsSync(job.sidecar)) {
          let previous: ProtectSidecar | null = null;
          try {
            previous = JSON.parse(readFileSync(job.sidecar, 'utf8')) as ProtectSidecar;
          } catch {
            /* unreadable: redo */
          }
          if (previous !== null && canonical(previous.parameters) === canonical(job.params)) {
            if (r.check && !existsSync(checkPathFor(job.output))) {
              process.stderr.write(`${job.input}: already immunized with the same parameters; running only --check\n`);
              todo.push({ ...job, checkOnly: true });
              continue;
            }
            skipped++;
            if (values['json']) console.log(JSON.stringify({ ...previous, skipped: true }));
            else
              process.stderr.write(
                `skip ${job.input}: already immunized with the same parameters (${job.output}; --force to redo)\n`,
              );
            continue;
          }
        }
        todo.push(job);
      } catch (e) {
        fail(job, e);
      }
    }

    // ---- the work ----
    let done = 0;
    if (todo.length > 0) {
      let models;
      try {
        models = await loadProtectModels(r);
      } catch (e) {
        throw asUsage(e);
      }
      using _models = models;
      for (const job of todo) {
        const bars = progressFor(basename(job.input));
        try {
          using photo = await readProtectInputs({ image: job.input, mask: maskPath, target: targetPath }, r);
          let sidecar: ProtectSidecar;
          if (job.checkOnly) {
            using written = (await readImage(job.output, { maxPixels: Number.MAX_SAFE_INTEGER })).tensor;
            const check = await checkImmunized(photo.image.tensor, written, models, r, {
              modelName: job.params!.model ?? 'model',
              onStep: bars.onStep,
            });
            writeCheck(check, job.output);
            sidecar = { ...(JSON.parse(readFileSync(job.sidecar, 'utf8')) as ProtectSidecar), check };
          } else {
            const times = jobStepTimes(r, photo.image);
            if (r.method !== 'noise')
              process.stderr.write(`${basename(job.input)}: ${estimateText(times.estimate, r)}\n`);
            const result = await protectImage(photo, models, r, {
              parameters: job.params!,
              inputPath: resolve(job.input),
              format,
              onStep: bars.onStep,
              onNote: (n) => process.stderr.write(`note: ${n}\n`),
            });
            bars.done();
            const unrecorded = times.record(result.sidecar.timing.attackMs, result.sidecar.attack?.stepsTaken ?? 0);
            if (unrecorded !== null) process.stderr.write(`note: ${unrecorded}\n`);
            sidecar = writeProtected(result, job.output, { sidecar: job.sidecar });
            if (result.check !== null) sidecar = { ...sidecar, check: result.check };
          }
          bars.done();
          done++;
          printResult(job, sidecar, values['json'] === true);
        } catch (e) {
          bars.done();
          fail(job, e);
        }
      }
    }
    if (jobs.length > 1 && !values['json'])
      process.stderr.write(`${done} immunized, ${skipped} skipped (already done), ${failures} failed\n`);
    return failures === 0 ? 0 : 1;
  },
};
