#!/usr/bin/env bash
# The project's test command: set-up (idempotent), lint (biome, knip, package boundaries), typecheck, proto drift check, all tests.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# Tests run the bundles by path; a test run (e.g. CI on a throwaway clone) must not repoint the
# user's `openshell` on PATH at its checkout.
OPENSHELL_INSTALL_COMMANDS=${OPENSHELL_INSTALL_COMMANDS:-0} bash scripts/setup.sh
source "$ROOT/scripts/lib/toolchain.sh"
ensure_node && ensure_pnpm

echo "== lint (biome)"
pnpm exec biome check .
echo "== unused files, exports and dependencies (knip, knip.ts)"
pnpm exec knip --no-progress
echo "== package boundaries (no relative imports into another package)"
node scripts/check-package-boundaries.mjs
echo "== typecheck (tsc)"
pnpm exec tsc -p tsconfig.json
echo "== proto drift (buf lint, buf generate leaves no diff)"
bash scripts/proto-check.sh
echo "== tests (vitest)"
pnpm exec vitest run "$@"
