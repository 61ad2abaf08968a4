/** `immunize protect --help`: the command's own flags, then every protect parameter from the schema. */
import { parametersFor, type ParameterSpec } from '../protect/index.js';

function flagHelp(p: ParameterSpec): string {
  const left = `  --${p.flag}${p.type === 'boolean' ? '' : ` ${p.valueName ?? 'V'}`}`;
  const words = p.description.split(' ');
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line !== '' && line.length + w.length + 1 > 72) {
      lines.push(line);
      line = w;
    } else line = line === '' ? w : `${line} ${w}`;
  }
  lines.push(line);
  return lines.map((l, i) => `${i === 0 ? left.padEnd(27) : ' '.repeat(27)}${l}`).join('\n');
}

export const PROTECT_HELP = `Usage: immunize protect IMAGE|FOLDER|'GLOB'... [options]

Adds an imperceptible perturbation so that diffusion-model edits of the photo come out
unrealistic (Salman et al. 2023). For each photo writes NAME.immunized.png, labelled as
immunized (XMP, see \`immunize inspect\`), and NAME.immunized.json with every parameter and the
measured results, next to the photo (or into --output). Folders contribute their images; quoted
globs ('photos/*.jpg', 'album/**/*.png') are expanded. Photos already immunized with the same
parameters are skipped (--force redoes them). docs/attacks.md explains the parameters.

Options:
  -o, --output PATH        output file (one image) or folder (default: next to each input)
  --mask PATH              white where the perturbation may go (e.g. faces), black where the
                           photo must stay untouched; same size as the photo
${parametersFor('cli').map(flagHelp).join('\n')}
  --threads N              CPU threads for libtorch (default: all cores)
  --force                  redo photos whose output and sidecar already exist
  --json                   print one JSON result line per photo instead of a summary
  -h, --help               this help

Keep immunized photos as PNG: JPEG re-compression is what weakens the protection.`;
