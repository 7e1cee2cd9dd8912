#!/usr/bin/env bash
# Sets up, starts a gateway with the VM driver, creates a sandbox (a QEMU microVM; KVM when it
# works, TCG otherwise) and runs a command in it, through plain OpenSSH over the
# gateway's CONNECT tunnel. The `openshell` CLI (issue 5) will wrap all of this.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
source "$ROOT/scripts/lib/toolchain.sh"
ensure_node
state=$(mktemp -d /tmp/oqs.XXXXXX)
port=${OPENSHELL_QUICKSTART_PORT:-18080}
node "$ROOT/packages/gateway/dist/openshell-gateway.js" --drivers vm --driver-dir "$ROOT/packages/driver-vm/dist" \
  --grpc-endpoint "http://127.0.0.1:$port" --vm-mem-mib 1024 \
  --driver-state-dir "$state/drv" --db-url "sqlite:$state/gateway.db" --disable-tls --bind-address 127.0.0.1 \
  --port "$port" >"$state/gateway.log" 2>&1 &
gw=$!
# A clean gateway stop powers the VMs off; nothing is left running.
cleanup() {
  kill -TERM $gw 2>/dev/null; wait $gw 2>/dev/null
  rm -rf "$state"
}
trap cleanup EXIT
for _ in $(seq 1 300); do grep -q '"msg":"Server listening"' "$state/gateway.log" && break; sleep 0.1; done
grep -o '"accelerator":"[a-z]*"[^}]*"msg":"[^"]*"' "$state/gateway.log" | sed 's/.*"msg":"/== /; s/"$//' || true
grep -q '"msg":"Server listening"' "$state/gateway.log" || { cat "$state/gateway.log"; exit 1; }
call() { curl -sS -X POST -H 'content-type: application/json' -d "$2" "http://127.0.0.1:$port/openshell.v1.OpenShell/$1"; }
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=process.argv[1].split(".").reduce((o,k)=>o?.[k],JSON.parse(s));process.stdout.write(String(v??""))})' "$1"; }

echo "== Health: $(call Health '{}')"
id=$(call CreateSandbox '{"name":"quickstart","spec":{}}' | field sandbox.id)
echo "== created sandbox quickstart ($id); waiting for READY (the VM boots)"
started=$(date +%s.%N)
for _ in $(seq 1 600); do
  [ "$(call GetSandbox '{"name":"quickstart"}' | field sandbox.phase)" = "SANDBOX_PHASE_READY" ] && break
  sleep 0.2
done
[ "$(call GetSandbox '{"name":"quickstart"}' | field sandbox.phase)" = "SANDBOX_PHASE_READY" ] || {
  echo "sandbox did not become READY; gateway log and console:"; tail -20 "$state/gateway.log"
  cat "$state"/drv/sandboxes/*/console.log 2>/dev/null | tail -20; exit 1; }
echo "== READY after $(echo "$(date +%s.%N) - $started" | bc | cut -c1-4) s"
token=$(call CreateSshSession "{\"sandboxId\":\"$id\"}" | field token)
echo "== ssh sandbox 'id -un; uname -sr; echo hello from \$PWD'"
ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
  -o "ProxyCommand=node $ROOT/apps/cli/dist/openshell.js ssh-proxy --gateway http://127.0.0.1:$port/connect/ssh --sandbox-id $id --token $token" \
  sandbox 'id -un; uname -sr; echo hello from $PWD'
echo "== DeleteSandbox: $(call DeleteSandbox '{"name":"quickstart"}')"
