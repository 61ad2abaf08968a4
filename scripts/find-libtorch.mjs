// Locates libtorch for the native addon, in the order the docs promise:
//   1. $LIBTORCH (an unpacked libtorch zip, or any prefix with include/ and lib/)
//   2. Debian's libtorch-dev (/usr/include/torch, /usr/lib/<triplet>)
//   3. a pip-installed torch (python3 -c 'import torch')
// Prints nothing itself; build-native.mjs and binding.gyp consume the result.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const HELP = `libtorch (PyTorch's C++ library) was not found. Install it one of these ways:
  - Debian/Ubuntu:   sudo apt-get install -y libtorch-dev
  - any Linux:       download libtorch from https://pytorch.org (C++/LibTorch), unzip it, and
                     export LIBTORCH=/path/to/libtorch
  - with Python:     pip install torch   (its bundled libtorch is used)
then run the build again (npm install, or npm run build).`;

function hasHeaders(includeDir) {
  return (
    existsSync(join(includeDir, 'ATen', 'ATen.h')) &&
    existsSync(join(includeDir, 'torch', 'csrc', 'autograd', 'autograd.h'))
  );
}
function hasLibs(libDir) {
  return (
    existsSync(libDir) && readdirSync(libDir).some((f) => /^libtorch_cpu\.(so|dylib)/.test(f) || f === 'torch_cpu.lib')
  );
}
function libsOf(libDir) {
  const files = readdirSync(libDir);
  const want = ['c10', 'torch_cpu', 'torch', 'c10_cuda', 'torch_cuda'];
  return want.filter((n) =>
    files.some((f) => f === `lib${n}.so` || f === `lib${n}.dylib` || f.startsWith(`lib${n}.so.`)),
  );
}

function fromPrefix(prefix, source) {
  const include = join(prefix, 'include');
  const lib = join(prefix, 'lib');
  if (!hasHeaders(include))
    return { error: `${source}: ${include}/ATen/ATen.h or torch/csrc/autograd/autograd.h is missing` };
  if (!hasLibs(lib)) return { error: `${source}: no libtorch_cpu in ${lib}` };
  return {
    source,
    includes: [include, join(include, 'torch', 'csrc', 'api', 'include')],
    libDir: lib,
    libs: libsOf(lib),
    cxx11abi: guessAbi(lib),
  };
}

function guessAbi(libDir) {
  // Official pre-cxx11 zips and older pip wheels use the old ABI; Debian and current builds use the new one.
  try {
    const out = execFileSync('nm', ['-DC', '--defined-only', join(libDir, 'libc10.so')], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    if (out.includes('std::__cxx11::basic_string')) return 1;
    if (out.includes('std::basic_string')) return 0;
  } catch {
    /* nm missing: assume the modern ABI */
  }
  return 1;
}

// IMMUNIZE_DEBIAN_PREFIX and IMMUNIZE_PYTHON override where steps 2 and 3 look (tests use them).
export function findLibtorch(environment = process.env) {
  const tried = [];
  const env = environment.LIBTORCH;
  if (env) {
    const r = fromPrefix(env, `$LIBTORCH=${env}`);
    if (!r.error) return r;
    tried.push(r.error);
  }
  const triplet = (() => {
    try {
      return execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).trim();
    } catch {
      return `${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`;
    }
  })();
  const debPrefix = environment.IMMUNIZE_DEBIAN_PREFIX ?? '/usr';
  const debInclude = join(debPrefix, 'include');
  const debLib = join(debPrefix, 'lib', triplet);
  if (hasHeaders(debInclude) && hasLibs(debLib)) {
    return {
      source: 'Debian libtorch-dev',
      includes: [debInclude, join(debInclude, 'torch', 'csrc', 'api', 'include')],
      libDir: debLib,
      libs: libsOf(debLib),
      cxx11abi: 1,
    };
  }
  tried.push(`Debian libtorch-dev: not installed (${debInclude}/ATen/ATen.h, ${debLib}/libtorch_cpu.so)`);
  try {
    const out = execFileSync(
      environment.IMMUNIZE_PYTHON ?? 'python3',
      ['-c', 'import torch,sys; print(torch.__path__[0]); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    )
      .trim()
      .split('\n');
    const r = fromPrefix(out[0], `pip torch at ${out[0]}`);
    if (!r.error) return { ...r, cxx11abi: Number(out[1]) };
    tried.push(r.error);
  } catch {
    tried.push('pip torch: python3 -c "import torch" failed');
  }
  return { error: `${HELP}\nLooked in:\n  - ${tried.join('\n  - ')}` };
}

// `node scripts/find-libtorch.mjs <field>` prints one field for binding.gyp.
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  const r = findLibtorch();
  if (r.error) {
    console.error(r.error);
    process.exit(1);
  }
  const field = process.argv[2];
  if (field === 'includes') console.log(r.includes.join(' '));
  else if (field === 'libdir') console.log(r.libDir);
  else if (field === 'libs') console.log(r.libs.map((l) => `-l${l}`).join(' '));
  else if (field === 'abi') console.log(r.cxx11abi);
  else console.log(JSON.stringify(r, null, 2));
}
