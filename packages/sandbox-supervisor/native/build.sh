#!/usr/bin/env bash
# Builds native/out/openshell-launch (static C, no libraries beyond libc.a) from openshell-launch.c;
# OPENSHELL_LAUNCHER_OUT=<file> builds it there instead (the VM runtime staging of an installed
# package, which never writes into the package).
# Idempotent: does nothing when the binary is newer than the source and this script. Prints the
# binary's path. Needs gcc and libc6-dev (Debian: apt-get install gcc libc6-dev).
set -euo pipefail
DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$DIR/openshell-launch.c
OUT=${OPENSHELL_LAUNCHER_OUT:-$DIR/out/openshell-launch}
if [ -x "$OUT" ] && [ "$OUT" -nt "$SRC" ] && [ "$OUT" -nt "${BASH_SOURCE[0]}" ]; then
  echo "$OUT"
  exit 0
fi
command -v gcc >/dev/null || { echo "native/build.sh: gcc not found (apt-get install gcc libc6-dev)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
tmp=$(mktemp "$(dirname "$OUT")/.openshell-launch.XXXXXX")
trap 'rm -f "$tmp"' EXIT
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -static -s -o "$tmp" "$SRC"
chmod 0755 "$tmp"
mv -f "$tmp" "$OUT"
trap - EXIT
echo "$OUT"
