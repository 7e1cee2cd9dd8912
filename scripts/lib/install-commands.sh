# Puts `openshell`, `openshell-gateway` and `openshell-driver-vm` on PATH the way an npm install of
# the packages would: small wrappers that run this checkout's bundles on the project's Node.
# Target: $OPENSHELL_BIN_DIR, else /usr/local/bin when writable, else ~/.local/bin.
# A file there that is not one of our wrappers is never overwritten.

WRAPPER_MARK="# openshell-ts wrapper (scripts/setup.sh)"

install_commands() {
  local bin_dir=${OPENSHELL_BIN_DIR:-}
  if [ -z "$bin_dir" ]; then
    if [ -w /usr/local/bin ]; then bin_dir=/usr/local/bin; else bin_dir="$HOME/.local/bin"; fi
  fi
  mkdir -p "$bin_dir"
  OPENSHELL_BIN_DIR=$bin_dir
  local node_bin
  node_bin=$(command -v node)
  local entry name bundle target
  for entry in "openshell:apps/cli/dist/openshell.js" \
    "openshell-gateway:packages/gateway/dist/openshell-gateway.js" \
    "openshell-driver-vm:packages/driver-vm/dist/openshell-driver-vm.js"; do
    name=${entry%%:*}
    bundle="$ROOT/${entry#*:}"
    target="$bin_dir/$name"
    if [ -e "$target" ] && ! grep -qF "$WRAPPER_MARK" "$target" 2>/dev/null; then
      toolchain_log "not replacing $target (not ours); run $bundle with $node_bin instead"
      continue
    fi
    local content flags
    # The Node flags the bundle's shebang declares (`#!/usr/bin/env -S node FLAGS`).
    flags=$(head -n 1 "$bundle" 2>/dev/null | sed -n 's|^#!/usr/bin/env -S node ||p')
    content=$(printf '#!/bin/sh\n%s\nexec "%s" %s"%s" "$@"\n' "$WRAPPER_MARK" "$node_bin" "${flags:+$flags }" "$bundle")
    if [ "$(cat "$target" 2>/dev/null)" != "$content" ]; then
      printf '%s\n' "$content" >"$target.tmp" && chmod 755 "$target.tmp" && mv "$target.tmp" "$target"
    fi
  done
  case ":$PATH:" in
    *":$bin_dir:"*) ;;
    *) toolchain_log "add $bin_dir to PATH to use openshell: export PATH=\"$bin_dir:\$PATH\"" ;;
  esac
}
