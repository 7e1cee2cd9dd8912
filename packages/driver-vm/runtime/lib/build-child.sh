# Sourced by the image builders (stage-vm-runtime.sh, build-gateway-image.sh): stopping a build
# step that runs in its own process group (mmdebstrap, docker build) and undoing what a killed
# mmdebstrap may have left mounted.

# Stops the process group of $CHILD (TERM, up to 10 s, then KILL) if it is still running.
stop_build_child() {
  [ -n "${CHILD:-}" ] || return 0
  if kill -TERM -- "-$CHILD" 2>/dev/null; then
    for _ in $(seq 100); do
      kill -0 -- "-$CHILD" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$CHILD" 2>/dev/null || true
    wait "$CHILD" 2>/dev/null || true
  fi
}

# Lazily unmounts everything mounted below directory $1, deepest first.
unmount_below() {
  local m
  awk -v w="$1/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
}
