#!/usr/bin/env bash
# Sets up, starts a gateway, creates a sandbox and lists it. Until the supervisor and VM driver land,
# it uses the test-only driver, so it cannot yet run a command inside the sandbox.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
source "$ROOT/scripts/lib/toolchain.sh"
ensure_node
state=$(mktemp -d /tmp/openshell-quickstart.XXXXXX)
port=${OPENSHELL_QUICKSTART_PORT:-18080}
node "$ROOT/packages/gateway/dist/openshell-gateway.js" --drivers test --driver-dir "$ROOT/packages/driver-test/dist" \
  --driver-state-dir "$state/drv" --db-url "sqlite:$state/gateway.db" --disable-tls --bind-address 127.0.0.1 \
  --port "$port" >"$state/gateway.log" 2>&1 &
gw=$!
trap 'kill -TERM $gw 2>/dev/null; wait $gw 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1 100); do grep -q '"msg":"Server listening"' "$state/gateway.log" && break; sleep 0.1; done
grep -q '"msg":"Server listening"' "$state/gateway.log" || { cat "$state/gateway.log"; exit 1; }
call() { curl -sS -X POST -H 'content-type: application/json' -d "$2" "http://127.0.0.1:$port/openshell.v1.OpenShell/$1"; echo; }
echo "== Health";        call Health '{}'
echo "== CreateSandbox"; call CreateSandbox '{"name":"quickstart","spec":{"environment":{"HELLO":"world"}}}'
echo "== ListSandboxes"; call ListSandboxes '{}'
echo "== DeleteSandbox"; call DeleteSandbox '{"name":"quickstart"}'
