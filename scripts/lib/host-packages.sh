# Sourced by the project's scripts: installs the Debian packages the project uses on the host:
# OpenSSH client (ssh/sftp/scp), sftp-server (the supervisor's sftp subsystem), rsync, and what the
# VM driver needs to stage and run microVMs (QEMU, qemu-img, mmdebstrap, busybox, kmod, cpio,
# e2fsprogs, lz4 to unpack the kernel), gcc and libc6-dev (the supervisor's static native launcher,
# packages/sandbox-supervisor/native), Docker (docker.io: the gateway-in-Docker deployment and its tests), zsh and fish
# (the CLI's completion scripts are checked by the real shells), and kubectl (kubernetes-client: e2e/kustomize-render.test.ts
# renders deploy/kubernetes offline; any kubectl will do, and Debian's is installed only when there is none, since
# other packages that ship /usr/bin/kubectl conflict with it), patchelf, iproute2 and nftables (the Kubernetes
# sandbox pods' self-contained supervisor directory: packages/sandbox-supervisor/staging/stage-supervisor-bin.sh),
# runsc (gVisor, one binary, registered only in the private test daemons: packages/driver-docker/test/docker-policy.test.ts
# checks that sandboxes fail closed under it).
# Idempotent: apt runs only when something is missing.

OPENSHELL_HOST_PACKAGES=(openssh-client openssh-sftp-server rsync openssl
  qemu-system-x86 qemu-utils mmdebstrap busybox-static kmod cpio e2fsprogs lz4 docker.io
  zsh fish gcc libc6-dev patchelf iproute2 nftables runsc)

ensure_host_packages() {
  local missing=()
  local pkg wanted=("${OPENSHELL_HOST_PACKAGES[@]}")
  command -v kubectl >/dev/null 2>&1 || wanted+=(kubernetes-client)
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    toolchain_log "missing Debian packages: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
    return 1
  fi
  toolchain_log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  }
}
