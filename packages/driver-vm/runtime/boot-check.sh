#!/usr/bin/env bash
# boot-check.sh: boots one throw-away sandbox VM from the staged runtime and times it.
#
#   bash packages/driver-vm/runtime/boot-check.sh [--selftest] [--graceful] [--timeout S] [--keep-log FILE]
#
# Stages the runtime if needed (stage-vm-runtime.sh), creates a qcow2 overlay on its rootfs in a
# temp dir, writes a dummy sandbox environment (OPENSHELL_ENDPOINT=http://host.openshell.internal:1,
# so the supervisor just retries), boots QEMU (microvm, TCG) with it in fw_cfg opt/openshell/env,
# waits for "OPENSHELL-VM-INIT ready" and the supervisor's LIFECYCLE:START and SSH:LISTEN lines,
# prints the times, then kills QEMU by its pid and removes the temp dir (also on failure).
#   --selftest   kernel cmdline openshell.selftest=1: the guest checks node + native modules + pty,
#                that the sandbox user cannot read the fw_cfg env, the env value round trip, the
#                agent tools on the sandbox user's PATH (python and pip of /sandbox/.venv,
#                cloudpickle, ensurepip, node, rsync) and the host firewall (python under TCG
#                makes this boot ~10-25 s slower)
#   --graceful   presses the ACPI power button (HMP system_powerdown, as the driver does over
#                QMP), times the guest's shutdown, boots the same overlay again and checks that
#                the root disk kept what the first boot wrote (implies --selftest)
#   --keep-log F copy the console log(s) to F (F.2 for the second boot)
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TIMEOUT=180
SELFTEST=0
GRACEFUL=0
KEEP_LOG=
while [ $# -gt 0 ]; do
  case "$1" in
    --selftest) SELFTEST=1 ;;
    --graceful) GRACEFUL=1 SELFTEST=1 ;;
    --timeout) TIMEOUT=$2 && shift ;;
    --keep-log) KEEP_LOG=$2 && shift ;;
    -h | --help)
      sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "boot-check: unknown argument '$1' (see --help)" >&2
      exit 2
      ;;
  esac
  shift
done

log() { printf '[boot-check] %s\n' "$*" >&2; }
die() {
  printf '[boot-check] FAIL: %s\n' "$*" >&2
  exit 1
}
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
command -v qemu-img >/dev/null || die "qemu-img not found (apt-get install qemu-utils)"

RT=$(bash "$SCRIPT_DIR/stage-vm-runtime.sh") || die "staging the runtime failed"
log "runtime $RT"

TMP=$(mktemp -d /tmp/openshell-vm-bootcheck.XXXXXX)
QPID=
stop_qemu() {
  [ -n "$QPID" ] || return 0
  if kill -0 "$QPID" 2>/dev/null; then
    kill -TERM "$QPID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$QPID" 2>/dev/null || true
  fi
  wait "$QPID" 2>/dev/null || true
  QPID=
}
cleanup() {
  stop_qemu
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

qemu-img create -q -f qcow2 -F qcow2 -b "$RT/rootfs.qcow2" "$TMP/overlay.qcow2"
# shellcheck disable=SC2016 # deliberately unexpanded: the guest must not expand it either
SELFTEST_VALUE='spaces  and $HOME `id` $(id) "double" '\''single'\'' ; | & > < * ? \ = tail= '
(
  umask 077
  cat >"$TMP/env" <<EOF
OPENSHELL_SANDBOX_ID=boot-check-0000
OPENSHELL_SANDBOX=boot-check
OPENSHELL_ENDPOINT=http://host.openshell.internal:1
OPENSHELL_SUPERVISOR_TOKEN=boot-check-token
OPENSHELL_SSH_SOCKET_PATH=/run/openshell/ssh.sock
OPENSHELL_LOG_LEVEL=info
OPENSHELL_SELFTEST_VALUE=$SELFTEST_VALUE
EOF
)
EXPECTED_SHA=$(printf '%s\n' "$SELFTEST_VALUE" | sha256sum | cut -c1-16)
CMDLINE="console=ttyS0 root=/dev/vda rw quiet panic=-1 cryptomgr.notests=1"
KERNEL=$RT/vmlinuz
[ ! -f "$RT/vmlinux" ] || KERNEL=$RT/vmlinux # as the driver: the PVH entry when staged
# Without these the guest hangs in TSC calibration whenever the host is busy (see host-tsc-khz.sh).
if TSC_KHZ=$(bash "$SCRIPT_DIR/host-tsc-khz.sh"); then
  CMDLINE+=" tsc_early_khz=$TSC_KHZ tsc=reliable"
else
  log "warning: host TSC frequency unknown; the guest may hang calibrating its TSC on a busy host"
fi
[ "$SELFTEST" = 1 ] && CMDLINE+=" openshell.selftest=1"

since() { awk -v now="$(date +%s.%N)" -v t="$1" 'BEGIN { printf "%.2f", now - t }'; }
elapsed() { since "$T0"; }

# boot <n>: starts QEMU in the background; sets QPID, T0, CONSOLE.
boot() {
  CONSOLE=$TMP/console-$1.log
  : >"$CONSOLE"
  local extra=()
  if [ "$GRACEFUL" = 1 ]; then # a human monitor on a pair of FIFOs, for system_powerdown
    rm -f "$TMP/mon.in" "$TMP/mon.out"
    mkfifo "$TMP/mon.in" "$TMP/mon.out"
    # shellcheck disable=SC2054 # QEMU option values contain commas
    extra=(-chardev "pipe,id=mon,path=$TMP/mon" -mon chardev=mon,mode=readline)
  fi
  T0=$(date +%s.%N)
  qemu-system-x86_64 -accel tcg -cpu max -machine microvm -m 1024 -smp 2 -nographic -no-reboot -nodefaults \
    -serial "file:$CONSOLE" -kernel "$KERNEL" -initrd "$RT/initrd.img" -append "$CMDLINE" \
    -drive "id=d0,file=$TMP/overlay.qcow2,format=qcow2,if=none" -device virtio-blk-device,drive=d0 \
    -netdev user,id=n0 -device virtio-net-device,netdev=n0 \
    -fw_cfg "name=opt/openshell/env,file=$TMP/env" -pidfile "$TMP/qemu.pid" "${extra[@]}" \
    >"$TMP/qemu-$1.out" 2>&1 &
  QPID=$!
}

# wait_boot: waits for ready, LIFECYCLE:START and SSH:LISTEN; sets T_READY, T_START, T_LISTEN.
wait_boot() {
  T_READY='' T_START='' T_LISTEN=''
  while :; do
    [ -n "$T_READY" ] || ! grep -qa 'OPENSHELL-VM-INIT ready' "$CONSOLE" || T_READY=$(elapsed)
    [ -n "$T_START" ] || ! grep -qa 'LIFECYCLE:START' "$CONSOLE" || T_START=$(elapsed)
    [ -n "$T_LISTEN" ] || ! grep -qa 'SSH:LISTEN' "$CONSOLE" || T_LISTEN=$(elapsed)
    [ -z "$T_LISTEN" ] || break
    if grep -qaE 'OPENSHELL-VM-INIT error|Kernel panic|selftest FAIL' "$CONSOLE"; then
      sleep 0.3
      show_console
      die "the guest reported an error (console above)"
    fi
    if ! kill -0 "$QPID" 2>/dev/null; then
      show_console
      cat "$TMP"/qemu-*.out >&2
      die "QEMU exited after $(elapsed) s before SSH:LISTEN (console and QEMU output above)"
    fi
    if awk -v e="$(elapsed)" -v t="$TIMEOUT" 'BEGIN { exit !(e > t) }'; then
      show_console
      die "timed out after $TIMEOUT s (ready=${T_READY:-no} start=${T_START:-no} listen=no)"
    fi
    sleep 0.1
  done
}

show_console() {
  echo "----- console ($CONSOLE) -----" >&2
  tr -d '\r' <"$CONSOLE" | tail -40 >&2
  echo "-----" >&2
}

report_boot() {
  local up
  up=$(grep -a 'OPENSHELL-VM-INIT ready' "$CONSOLE" | sed -n 's/.*uptime=\([0-9.]*\).*/\1/p' | head -1)
  log "boot $1: init ready ${T_READY} s (guest uptime ${up} s), supervisor LIFECYCLE:START ${T_START} s, SSH:LISTEN ${T_LISTEN} s (host wall clock from QEMU launch)"
  grep -a 'OPENSHELL-VM-INIT' "$CONSOLE" | tr -d '\r' | sed 's/^/  /' >&2
  grep -aE 'LIFECYCLE:START|SSH:LISTEN' "$CONSOLE" | tr -d '\r' | cut -c1-240 | sed 's/^/  /' >&2
  if [ "$SELFTEST" = 1 ]; then
    grep -qa 'OPENSHELL-VM-INIT selftest ok' "$CONSOLE" || die "the guest selftest did not pass"
    grep -qa "OPENSHELL_SELFTEST_VALUE sha256=$EXPECTED_SHA" "$CONSOLE" ||
      die "OPENSHELL_SELFTEST_VALUE did not reach the supervisor unchanged (expected sha256 $EXPECTED_SHA)"
    log "boot $1: selftest ok (env value round trip ok)"
  fi
  [ -z "$KEEP_LOG" ] || cp "$CONSOLE" "$KEEP_LOG${2:-}"
}

boot 1
log "QEMU pid $QPID booting (console $CONSOLE, cmdline: $CMDLINE)"
wait_boot
report_boot 1

if [ "$GRACEFUL" = 1 ]; then
  grep -qa 'boots=1' "$CONSOLE" || die "first boot did not report boots=1"
  sleep 2 # let the supervisor settle (a SIGTERM right at SSH:LISTEN kills it before its handler exists)
  T1=$(date +%s.%N)
  echo system_powerdown >"$TMP/mon.in"
  for _ in $(seq 300); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$QPID" 2>/dev/null && die "the guest did not power off within 30 s of system_powerdown"
  wait "$QPID" 2>/dev/null || true
  QPID=
  log "graceful poweroff: QEMU exited $(since "$T1") s after system_powerdown"
  grep -aE 'OPENSHELL-VM-INIT (stopping|supervisor exited|poweroff)|LIFECYCLE:STOP' "$CONSOLE" | tr -d '\r' | cut -c1-200 | sed 's/^/  /' >&2
  boot 2
  log "QEMU pid $QPID booting the same overlay again"
  wait_boot
  report_boot 2 .2
  grep -qa 'boots=2' "$CONSOLE" || die "second boot did not see the first boot's write (boots=2 expected)"
  log "second boot saw the first boot's write on the overlay (boots=2)"
fi

stop_qemu
log "ok"
