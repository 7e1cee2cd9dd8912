#!/usr/bin/env bash
# Builds every binary and packs the published packages into one directory, as npm tarballs:
#   openshell (CLI, apps/cli), @openshell/gateway, @openshell/driver-vm, @openshell/driver-kubernetes, @openshell/driver-docker,
#   @openshell/sandbox-supervisor
# Each bundle inlines the workspace packages (core, proto, policy, bootstrap, driver-sdk), so the
# packed manifests depend only on registry packages and on each other (pnpm pack turns
# `workspace:*` into the one version: node scripts/set-version.mjs). Idempotent: the directory is
# emptied first. Prints the tarballs' paths on stdout; progress on stderr.
#
#   bash scripts/pack-release.sh [DIR]     DIR defaults to dist-release/ in the repository
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib/toolchain.sh
source "$ROOT/scripts/lib/toolchain.sh"
ensure_node >/dev/null
ensure_pnpm >/dev/null
OUT=${1:-$ROOT/dist-release}
PACKAGES=(openshell @openshell/gateway @openshell/driver-vm @openshell/driver-kubernetes @openshell/driver-docker @openshell/sandbox-supervisor)

version=$(node scripts/set-version.mjs --check)
toolchain_log "building version $version"
pnpm run build >/dev/null
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/*.tgz
filters=()
for pkg in "${PACKAGES[@]}"; do filters+=(--filter "$pkg"); done
pnpm "${filters[@]}" pack --pack-destination "$OUT" >/dev/null
# What a user would install: no workspace protocol, no workspace-only package among the dependencies.
for tarball in "$OUT"/*.tgz; do
  tar -xOzf "$tarball" package/package.json | node -e '
    const m = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const published = new Set(process.argv.slice(1));
    const bad = [];
    for (const field of ["dependencies", "optionalDependencies", "peerDependencies"])
      for (const [name, range] of Object.entries(m[field] ?? {})) {
        if (String(range).startsWith("workspace:")) bad.push(`${field}.${name}=${range}`);
        if (name.startsWith("@openshell/") && !published.has(name)) bad.push(`${field}.${name} is not published`);
        if (name.startsWith("@types/")) bad.push(`${field}.${name} is a type package`);
      }
    if (bad.length) { console.error(`${m.name}: ${bad.join(", ")}`); process.exit(1); }
  ' "${PACKAGES[@]}" || { toolchain_log "refusing to publish $tarball"; exit 1; }
done
ls "$OUT"/*.tgz
