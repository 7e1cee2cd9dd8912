#!/usr/bin/env bash
# Bundles one benchmark (TypeScript) with esbuild and runs it on the project's Node.
# Usage: bash bench/run.sh relay-bench.ts [args...]   (run `bash scripts/setup.sh` first)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/lib/toolchain.sh"
ensure_node
name="$1"; shift
out="$ROOT/bench/.build/${name%.ts}.mjs"
mkdir -p "$ROOT/bench/.build"
"$ROOT/bench/node_modules/.bin/esbuild" "$ROOT/bench/$name" --bundle --platform=node --format=esm \
  --target=node24 --external:ssh2 --external:cpu-features --log-level=warning \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" \
  --outfile="$out"
cd "$ROOT/bench"
exec node "$out" "$@"
