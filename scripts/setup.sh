#!/usr/bin/env bash
# Sets up a fresh Debian machine with Node 20: system packages, npm dependencies, the native
# addon and the TypeScript build. Safe to run again (each step is skipped when already done).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

need_pkgs=()
[ -f /usr/include/ATen/ATen.h ] || [ -n "${LIBTORCH:-}" ] || need_pkgs+=(libtorch-dev)
command -v g++ >/dev/null || need_pkgs+=(g++)
command -v make >/dev/null || need_pkgs+=(make)
command -v python3 >/dev/null || need_pkgs+=(python3)
# The service's scale-out tests run a real Redis; the report and web-page tests drive Chromium.
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v chromium >/dev/null || need_pkgs+=(chromium)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]} with apt-get" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  node scripts/build-native.mjs
fi
npx tsc -p tsconfig.json
node scripts/build-web.mjs   # the web page (web/ -> dist/web/), served by `immunize serve`
