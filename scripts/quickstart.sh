#!/usr/bin/env bash
# Sets up, starts a gateway, creates a sandbox and runs a command in it over SSH through the gateway.
# Until the VM driver (issue 4) lands it uses the TEST-ONLY driver, which runs the real supervisor
# (openshell-sandbox) as a plain host process: commands run as `nobody` in a temp dir, NOT isolated.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
source "$ROOT/scripts/lib/toolchain.sh"
ensure_node
state=$(mktemp -d /tmp/oqs.XXXXXX)
work=$(mktemp -d /tmp/oqs-work.XXXXXX)
chown nobody:nogroup "$work" 2>/dev/null || chown 65534:65534 "$work"
port=${OPENSHELL_QUICKSTART_PORT:-18080}
OPENSHELL_TEST_DRIVER_SUPERVISOR="$ROOT/packages/sandbox-supervisor/dist/openshell-sandbox.js" \
OPENSHELL_TEST_DRIVER_ENDPOINT="http://127.0.0.1:$port" \
OPENSHELL_TEST_DRIVER_SUPERVISOR_ARGS="[\"--run-as-user\",\"nobody\",\"--workdir\",\"$work\"]" \
  node "$ROOT/packages/gateway/dist/openshell-gateway.js" --drivers test --driver-dir "$ROOT/packages/driver-test/dist" \
  --driver-state-dir "$state/drv" --db-url "sqlite:$state/gateway.db" --disable-tls --bind-address 127.0.0.1 \
  --port "$port" >"$state/gateway.log" 2>&1 &
gw=$!
cleanup() {
  for pidfile in "$state"/drv/supervisors/*.pid; do [ -f "$pidfile" ] && kill -TERM "$(cat "$pidfile")" 2>/dev/null; done
  kill -TERM $gw 2>/dev/null; wait $gw 2>/dev/null
  rm -rf "$state" "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do grep -q '"msg":"Server listening"' "$state/gateway.log" && break; sleep 0.1; done
grep -q '"msg":"Server listening"' "$state/gateway.log" || { cat "$state/gateway.log"; exit 1; }
call() { curl -sS -X POST -H 'content-type: application/json' -d "$2" "http://127.0.0.1:$port/openshell.v1.OpenShell/$1"; }
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=process.argv[1].split(".").reduce((o,k)=>o?.[k],JSON.parse(s));process.stdout.write(String(v??""))})' "$1"; }

echo "== Health: $(call Health '{}')"
id=$(call CreateSandbox '{"name":"quickstart","spec":{}}' | field sandbox.id)
echo "== created sandbox quickstart ($id); waiting for READY"
for _ in $(seq 1 100); do
  [ "$(call GetSandbox '{"name":"quickstart"}' | field sandbox.phase)" = "SANDBOX_PHASE_READY" ] && break
  sleep 0.2
done
token=$(call CreateSshSession "{\"sandboxId\":\"$id\"}" | field token)
echo "== ssh sandbox 'id -un; uname -sr; echo hello from \$PWD'"
ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
  -o "ProxyCommand=node $ROOT/apps/cli/dist/openshell.js ssh-proxy --gateway http://127.0.0.1:$port/connect/ssh --sandbox-id $id --token $token" \
  sandbox 'id -un; uname -sr; echo hello from $PWD'
echo "== DeleteSandbox: $(call DeleteSandbox '{"name":"quickstart"}')"
