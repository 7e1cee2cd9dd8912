#!/usr/bin/env bash
# The main job, on the `openshell` CLI: set up, start a local gateway (VM driver, mTLS; it keeps
# running afterwards), create a sandbox (a QEMU microVM; KVM when it works, TCG otherwise), run a
# command in it over SSH through the gateway, and delete the sandbox again (--no-keep).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
source "$ROOT/scripts/lib/toolchain.sh"
ensure_node
openshell() { node "$ROOT/apps/cli/dist/openshell.js" "$@"; }

openshell gateway start ${OPENSHELL_QUICKSTART_PORT:+--port "$OPENSHELL_QUICKSTART_PORT"}
openshell status
openshell sandbox create --no-keep -- sh -c 'echo "hello from $(id -un) in $PWD on $(uname -sr)"'
cat <<'NEXT'

Next:
  openshell sandbox create --name dev     # a sandbox that stays; then: openshell sandbox connect dev
  openshell sandbox list
  openshell gateway stop                  # sandboxes keep their disks; openshell gateway start resumes
NEXT
