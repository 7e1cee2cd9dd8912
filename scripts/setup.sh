#!/usr/bin/env bash
# Sets up everything on a fresh Debian 12 machine and builds the binaries. Idempotent: a second run
# installs nothing and rebuilds only when sources changed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib/toolchain.sh
source "$ROOT/scripts/lib/toolchain.sh"

# shellcheck source=lib/host-packages.sh
source "$ROOT/scripts/lib/host-packages.sh"

# shellcheck source=lib/install-commands.sh
source "$ROOT/scripts/lib/install-commands.sh"

ensure_node
ensure_pnpm
ensure_host_packages
toolchain_log "node $(node --version), pnpm $(pnpm --version)"

stamp_dir="$ROOT/node_modules/.openshell"
# Hash only paths that exist: a fresh clone has no empty directories, and find would fail on them.
existing() { for p in "$@"; do [ -e "$p" ] && printf '%s\n' "$p"; done; return 0; }
mapfile -t dep_roots < <(existing package.json pnpm-lock.yaml pnpm-workspace.yaml packages apps e2e bench)
mapfile -t src_roots < <(existing proto packages apps tsup.binary.ts)
deps_hash=$(find "${dep_roots[@]}" -maxdepth 2 -name package.json -not -path "*/node_modules/*" 2>/dev/null | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)
if [ "$(cat "$stamp_dir/deps" 2>/dev/null)" != "$deps_hash$(node --version)" ]; then
  toolchain_log "installing dependencies"
  CI=true pnpm install --frozen-lockfile
  mkdir -p "$stamp_dir" && printf '%s' "$deps_hash$(node --version)" >"$stamp_dir/deps"
fi

src_hash=$(find "${src_roots[@]}" -path '*/node_modules' -prune -o -path '*/dist' -prune -o -type f \( -name '*.ts' -o -name '*.json' -o -name '*.proto' -o -name '*.sql' \) -print 2>/dev/null | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)
if [ "$(cat "$stamp_dir/build" 2>/dev/null)" != "$src_hash" ] || ! ls packages/gateway/dist/openshell-gateway.js >/dev/null 2>&1; then
  toolchain_log "building binaries"
  pnpm run build >/dev/null
  printf '%s' "$src_hash" >"$stamp_dir/build"
fi
# The supervisor's native launcher (static C; skipped when the binary is newer than its source).
toolchain_log "native launcher: $(bash "$ROOT/packages/sandbox-supervisor/native/build.sh")"
# The VM runtime (kernel, initramfs, base disk with Node and the supervisor); cached by content.
runtime_dir=$(bash "$ROOT/packages/driver-vm/runtime/stage-vm-runtime.sh")
toolchain_log "VM runtime: $runtime_dir"
if [ "${OPENSHELL_INSTALL_COMMANDS:-1}" = 1 ]; then
  install_commands
  toolchain_log "ready: $(command -v openshell || echo "$OPENSHELL_BIN_DIR/openshell") (try: openshell --help)"
else
  toolchain_log "ready: node apps/cli/dist/openshell.js (commands not put on PATH: OPENSHELL_INSTALL_COMMANDS=0)"
fi
