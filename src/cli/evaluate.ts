/** `immunize evaluate DATASET`: the paper's evaluation protocol, a JSON results file and an HTML report (docs/evaluate.md). */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import {
  BUILTIN_METHODS,
  DEFAULT_EVAL_SIZE,
  DEFAULT_MODELS,
  PHOTOGUARD_EDIT,
  loadDataset,
  type BuiltinMethod,
  type DatasetOverrides,
} from '../eval/dataset.js';
import { evaluate } from '../eval/protocol.js';
import { writeReport } from '../eval/report.js';
import { writeFileAtomic as writeAtomic } from '../io/atomic.js';
import { checkDevice, setNumThreads } from '../torch/index.js';
import { defineCommand, flags, onePositional, parseInteger, parseNumber } from './args.js';
import { UsageError } from '../errors.js';

const HELP = `Usage: immunize evaluate DATASET.json [options]

Runs the evaluation protocol of Salman et al. 2023 (Table 6) on a dataset file (docs/evaluate.md):
for each photo, edits the clean image, its immunized versions and the random-noise baseline
(and, with --purify, their purified versions) with the same prompt and seed; compares every edit
with the clean edit (12 full-reference metrics), scores it against its prompt with CLIP, and
computes FID and precision/recall over the set. Writes a JSON results file and an HTML report.
Work is cached in a work folder: a re-run reuses everything still valid and resumes where an
interrupted run stopped.

Options:
  --methods LIST       built-in immunizations to run: ${BUILTIN_METHODS.join(',')} (default: the
                       dataset's, else encoder,noise; pre-immunized files in the dataset add theirs)
  --purify SPEC        purification sweep, e.g. 'jpeg:95,85,75,65,50' (comma lists expand; repeat
                       the option for several; specs as \`immunize purify\`, docs/purify.md;
                       default: the dataset's, else jpeg:75 and impress:20; 'none' for no sweep)
  --size N             evaluate at N×N (multiple of 8; default the dataset's, else ${DEFAULT_EVAL_SIZE})
  --steps N            editing: denoising steps (default ${PHOTOGUARD_EDIT.steps})
  --strength S         editing: img2img strength (default ${PHOTOGUARD_EDIT.strength})
  --guidance G         editing: guidance scale (default ${PHOTOGUARD_EDIT.guidance})
  --eta E              editing: DDIM η (default ${PHOTOGUARD_EDIT.eta})
  --attack-steps N     immunization: PGD steps (default: the preset's, 200)
  --eps E              immunization: L∞ budget on [0,1], e.g. 16/255
  --diffusion-steps N  diffusion attack: denoising steps per pass (default 4)
  --img2img-model M    img2img pipeline (default ${DEFAULT_MODELS.img2img})
  --inpaint-model M    inpainting pipeline, for items with a mask (default ${DEFAULT_MODELS.inpaint})
  --encoder-model M    autoencoder for the encoder attack (default: the editing pipeline's VAE)
  --clip-model M       CLIP for image–prompt similarity, e.g. openai/clip-vit-large-patch14
                       (default: none, CLIP scores are skipped)
  --inception FILE     pytorch-fid Inception .safetensors for FID/PR (default: none, skipped)
  --fid-dims D         Inception feature size: 2048 (default), 768, 192 or 64
  --work DIR           work folder (default: DATASET.work/ next to the dataset)
  -o, --output FILE    results JSON (default: DATASET.results.json)
  --report DIR         HTML report folder (default: DATASET.report/); --no-report to skip
  --embed-images       put the images into index.html as data: URIs (one self-contained file)
  --force              recompute everything, ignoring the work folder
  --threads N          CPU threads for libtorch
  --device D           cpu (default) | cuda | cuda:N
  --json               print the results file's path and summary as one JSON line
  -h, --help           this help`;

export const command = defineCommand({
  summary: "run the paper's evaluation protocol on a dataset: results JSON + HTML report",
  help: HELP,
  options: flags({
    values:
      'output methods size steps strength guidance eta attack-steps eps diffusion-steps img2img-model inpaint-model encoder-model clip-model inception fid-dims work report threads device',
    switches: 'no-report embed-images force json',
    lists: 'purify',
  }),
  async run({ values, positionals }) {
    const datasetPath = onePositional(positionals, 'dataset file', 'immunize evaluate DATASET.json');
    let methods: BuiltinMethod[] | undefined;
    if (values.methods !== undefined) {
      methods = values.methods
        .split(',')
        .map((m) => m.trim())
        .filter(Boolean)
        .map((m) => {
          if (!(BUILTIN_METHODS as readonly string[]).includes(m))
            throw new UsageError(
              `--methods: expected a comma list of ${BUILTIN_METHODS.join(', ')} but received '${m}'`,
            );
          return m as BuiltinMethod;
        });
    }
    const localOrId = (v: string | undefined): string | undefined =>
      v === undefined ? undefined : existsSync(v) ? resolve(v) : v;
    if (values.inception !== undefined && !existsSync(values.inception))
      throw new UsageError(`--inception: file not found: ${values.inception}`);
    const fidDims = parseInteger('fid-dims', values['fid-dims']);
    if (fidDims !== undefined && ![64, 192, 768, 2048].includes(fidDims))
      throw new UsageError(`--fid-dims: expected 64, 192, 768 or 2048 but received ${fidDims}`);
    const size = parseInteger('size', values.size, { min: 8, max: 4096 });
    if (size !== undefined && size % 8 !== 0)
      throw new UsageError(`--size: must be a multiple of 8 but received ${size}`);
    const eps = parseNumber('eps', values.eps);
    if (eps !== undefined && !(eps > 0 && eps <= 1))
      throw new UsageError(`--eps: must be greater than 0 and at most 1 (e.g. 16/255) but received ${values.eps}`);
    const overrides: DatasetOverrides = {
      size,
      models: {
        img2img: localOrId(values['img2img-model']),
        inpaint: localOrId(values['inpaint-model']),
        encoder: localOrId(values['encoder-model']),
        clip: localOrId(values['clip-model']),
        inception: values.inception === undefined ? undefined : resolve(values.inception),
      },
      edit: {
        steps: parseInteger('steps', values.steps, { min: 1, max: 1000 }),
        strength: parseNumber('strength', values.strength, { min: 0, max: 1 }),
        guidance: parseNumber('guidance', values.guidance, { min: 0, max: 100 }),
        eta: parseNumber('eta', values.eta, { min: 0, max: 1 }),
      },
      immunize: {
        methods,
        eps,
        steps: parseInteger('attack-steps', values['attack-steps'], { min: 1 }),
        diffusionSteps: parseInteger('diffusion-steps', values['diffusion-steps'], { min: 1, max: 1000 }),
      },
      purify: values.purify,
      fid: { dims: fidDims },
    };
    const device = checkDevice(values.device ?? 'cpu');
    const threads = parseInteger('threads', values.threads, { min: 1, max: 4096 });
    if (threads !== undefined) setNumThreads(threads);
    if (values.report !== undefined && values['no-report'])
      throw new UsageError('--report and --no-report contradict each other');

    const ds = loadDataset(datasetPath, overrides);
    const stem = join(dirname(ds.path), basename(ds.path).replace(/\.json$/i, ''));
    const workDir = resolve(values.work ?? `${stem}.work`);
    if (existsSync(workDir) && !statSync(workDir).isDirectory())
      throw new UsageError(`--work: ${workDir} exists and is not a folder`);
    const output = resolve(values.output ?? `${stem}.results.json`);
    const reportDir = values['no-report'] ? null : resolve(values.report ?? `${stem}.report`);

    const results = await evaluate(ds, { workDir, device, force: values.force === true });
    writeAtomic(output, JSON.stringify(results, jsonReplacer, 2) + '\n');
    const report =
      reportDir === null
        ? null
        : await writeReport(results, reportDir, { embedImages: values['embed-images'] === true });
    for (const n of results.notes) process.stderr.write(`note: ${n}\n`);
    const computed = Object.values(results.work.computed).reduce((a, b) => a + b, 0);
    const cached = Object.values(results.work.cached).reduce((a, b) => a + b, 0);
    if (values.json) {
      console.log(
        JSON.stringify({
          results: output,
          report,
          items: results.items.length,
          variants: results.variants.length,
          computed,
          cached,
          totalMs: results.timing.totalMs,
        }),
      );
    } else {
      console.log(
        `${results.items.length} item(s), ${results.variants.length} variant(s): ${computed} computed, ${cached} reused from ${workDir}`,
      );
      console.log(`results: ${output}`);
      if (report) console.log(`report:  ${report}`);
    }
    return 0;
  },
});

/** JSON has no Infinity/NaN: written as the strings "Infinity"/"NaN" (PSNR of identical images is infinite for some definitions). */
export function jsonReplacer(_key: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
}
