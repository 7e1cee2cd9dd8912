/*
 * openshell-sandbox in a Kubernetes sandbox pod: the agent container's entrypoint, copied with the
 * rest of /opt/openshell/bin from the supervisor image by the pod's init container. Static, so it
 * runs in any image (no /bin/sh, no libc of the image's): it puts the bundled tools (ip, nft) first
 * on PATH and runs the supervisor bundle with the bundled Node, whose interpreter and library path
 * point into /opt/openshell/bin/lib (stage-supervisor-bin.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BIN_DIR "/opt/openshell/bin"
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

int main(int argc, char **argv) {
  const char *path = getenv("PATH");
  if (path == NULL || path[0] == '\0') path = DEFAULT_PATH;
  size_t size = strlen(BIN_DIR "/tools:") + strlen(path) + 1;
  char *next = malloc(size);
  char **args = calloc((size_t)argc + 2, sizeof *args);
  if (next == NULL || args == NULL) {
    fputs("openshell-sandbox: out of memory\n", stderr);
    return 127;
  }
  snprintf(next, size, "%s/tools:%s", BIN_DIR, path);
  setenv("PATH", next, 1);
  args[0] = BIN_DIR "/node";
  args[1] = BIN_DIR "/openshell-sandbox.js";
  for (int i = 1; i < argc; i++) args[i + 1] = argv[i];
  execv(args[0], args);
  perror("openshell-sandbox: cannot run " BIN_DIR "/node");
  return 127;
}
