#!/usr/bin/env bash
# The README's test command: set everything up, then lint and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run lint --silent
node scripts/run-tests.mjs
