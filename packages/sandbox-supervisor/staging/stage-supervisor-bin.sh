#!/usr/bin/env bash
# stage-supervisor-bin.sh OUT: stages the supervisor self-contained for /opt/openshell/bin in a
# container or pod: what the Docker driver bind-mounts read-only into every container, and what a
# Kubernetes sandbox pod's init container copies from the supervisor image into an emptyDir
# (`cp -a /opt/openshell/bin/. ...`). The supervisor then runs in ANY sandbox image: no /bin/sh,
# Node, glibc, iproute2 or nftables of the image's are used. Shipped in the
# @openshell/sandbox-supervisor package, so it stages that package's own build (from npm or a
# checkout alike).
#
#   OUT/openshell-sandbox      static entry (openshell-sandbox-entry.c): PATH=tools first, runs node
#   OUT/openshell-sandbox.js   the supervisor bundle (@openshell/sandbox-supervisor dist)
#   OUT/node                   Node 24, interpreter and RUNPATH patched to /opt/openshell/bin/lib
#   OUT/node_modules/          the supervisor's native modules (ssh2, cpu-features, node-pty, ...)
#   OUT/openshell-launch       the native launcher (static; the supervisor's default path)
#   OUT/tools/{ip,nft}         iproute2 and nftables of this host, patched the same way
#   OUT/lib/                   the dynamic loader and every library the above need (RUNPATH patched)
#
# The paths are absolute (an ELF interpreter cannot be relative): the directory works only mounted
# at /opt/openshell/bin, which is where the driver mounts it. Not bundled: `stdbuf` (the
# supervisor's bypass monitor runs `stdbuf -oL nft monitor`; its LD_PRELOAD library is found by a
# path compiled into coreutils), which comes from the image when it has coreutils.
# Needs: patchelf, gcc with libc6-dev (static), ip and nft on this host, the supervisor built (in a
# checkout: bash scripts/setup.sh). Environment: OPENSHELL_NODE_BIN (default: node on PATH).
set -euo pipefail
OUT=${1:?usage: stage-supervisor-bin.sh OUT}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
PREFIX=/opt/openshell/bin
SUPERVISOR_PKG=$(dirname "$SCRIPT_DIR")
BUNDLE=$SUPERVISOR_PKG/dist/openshell-sandbox.js
NODE_BIN=${OPENSHELL_NODE_BIN:-$(command -v node || true)}
NATIVE_DEPS=(ssh2 node-pty)
TOOLS=(ip nft)

die() { echo "stage-supervisor-bin: $*" >&2; exit 1; }
for tool in patchelf gcc ldd "${TOOLS[@]}"; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install patchelf gcc libc6-dev iproute2 nftables)"
done
[ -x "$NODE_BIN" ] || die "no node to bundle (set OPENSHELL_NODE_BIN)"
"$NODE_BIN" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 24 ? 0 : 1)' ||
  die "$NODE_BIN is not Node 24 or newer"
[ -f "$BUNDLE" ] || die "$BUNDLE not found; build the supervisor first (in a checkout: bash scripts/setup.sh)"

rm -rf "$OUT"
mkdir -p "$OUT/lib" "$OUT/tools" "$OUT/node_modules"

# Copies the shared libraries $1 needs (and the loader) into OUT/lib.
copy_libraries() {
  local lib
  while read -r lib; do
    [ -n "$lib" ] || continue
    [ -e "$OUT/lib/$(basename "$lib")" ] || cp -L "$lib" "$OUT/lib/"
  done < <(ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

# An executable that runs with the bundled loader and libraries only.
install_executable() {
  install -m 0755 "$1" "$2"
  copy_libraries "$1"
  patchelf --set-interpreter "$PREFIX/lib/ld-linux-x86-64.so.2" --set-rpath "$PREFIX/lib" "$2"
}

install_executable "$(readlink -f "$NODE_BIN")" "$OUT/node"
for tool in "${TOOLS[@]}"; do install_executable "$(readlink -f "$(command -v "$tool")")" "$OUT/tools/$tool"; done
install -m 0644 "$BUNDLE" "$OUT/openshell-sandbox.js"

# node-pty is optional (npm skips it when its native build fails): without it the supervisor runs
# and only terminals are refused, so say so and go on.
pty_line=$("$NODE_BIN" "$SCRIPT_DIR/native-closure.mjs" "$SUPERVISOR_PKG" node-pty 2>/dev/null | grep "^node-pty"$'\t') || pty_line=
if [ -z "$pty_line" ] || ! "$NODE_BIN" -e 'require(process.argv[1])' "${pty_line#*$'\t'}" >/dev/null 2>&1; then
  echo "stage-supervisor-bin: warning: node-pty is not installed beside the supervisor or its addon does not load ($SUPERVISOR_PKG): sandboxes get no terminals (sandbox connect, exec --tty); for them, apt-get install -y build-essential python3 and reinstall (npm install -g --allow-scripts=node-pty,ssh2,cpu-features openshell)" >&2
  NATIVE_DEPS=(ssh2)
fi
native_list=$("$NODE_BIN" "$SCRIPT_DIR/native-closure.mjs" "$SUPERVISOR_PKG" "${NATIVE_DEPS[@]}") ||
  die "cannot resolve the supervisor's native modules (${NATIVE_DEPS[*]}) from $SUPERVISOR_PKG; reinstall openshell (in a checkout: pnpm install)"
while IFS=$'\t' read -r name real; do
  mkdir -p "$(dirname "$OUT/node_modules/$name")"
  cp -rL "$real" "$OUT/node_modules/$name"
  if [ -d "$OUT/node_modules/$name/prebuilds" ]; then
    find "$OUT/node_modules/$name/prebuilds" -mindepth 1 -maxdepth 1 -type d ! -name 'linux-x64*' -exec rm -rf {} +
  fi
done <<<"$native_list"
while read -r addon; do copy_libraries "$addon"; done < <(find "$OUT/node_modules" -name '*.node' -type f)

launcher=$(OPENSHELL_LAUNCHER_OUT="$OUT/openshell-launch" bash "$SUPERVISOR_PKG/native/build.sh")
[ "$launcher" = "$OUT/openshell-launch" ] || die "the launcher was not built into $OUT"
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -static -s -o "$OUT/openshell-sandbox" "$SCRIPT_DIR/openshell-sandbox-entry.c"

# Libraries find their own dependencies in lib/ too (RUNPATH is not inherited), except the loader.
for lib in "$OUT"/lib/*; do
  case "$(basename "$lib")" in ld-linux-*) continue ;; esac
  chmod u+w "$lib"
  patchelf --set-rpath "$PREFIX/lib" "$lib"
done
echo "$OUT"
