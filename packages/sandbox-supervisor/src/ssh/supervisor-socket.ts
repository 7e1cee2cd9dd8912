import { chmodSync, chownSync, lstatSync, mkdirSync, rmSync, statSync } from "node:fs";
import { connect, type Server } from "node:net";
import { dirname } from "node:path";
import { OpenShellError } from "@openshell/core";

/**
 * Listens on `socketPath` so that only root can connect: the directory is made 0700 (and root's)
 * and the socket 0600. A socket left over from an earlier run (nobody accepts on it) is replaced;
 * a live socket or anything else at the path is an error rather than something to delete.
 */
export async function listenOnSupervisorSocket(server: Server, socketPath: string): Promise<void> {
  const directory = dirname(socketPath);
  mkdirSync(directory, { recursive: true, mode: 0o700 });
  // Tightening a shared directory like /tmp would break the machine; demand a dedicated one.
  const stat = statSync(directory);
  if ((stat.mode & 0o1000) !== 0 || directory === "/") {
    throw new OpenShellError(
      "config_invalid",
      `SSH socket directory ${directory} is shared; put the socket in a directory of its own (e.g. /run/openshell/ssh.sock)`,
    );
  }
  // The owner of the directory could loosen it again, so it must be us (root).
  const uid = process.getuid?.();
  if (uid === 0 && stat.uid !== 0) chownSync(directory, 0, 0);
  chmodSync(directory, 0o700);
  await removeStaleSocket(socketPath);
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once("error", onError);
    server.listen(socketPath, () => {
      server.off("error", onError);
      resolve();
    });
  }).catch((error: unknown) => {
    throw new OpenShellError(
      "failed_precondition",
      `cannot listen on SSH socket ${socketPath}: ${(error as Error).message}`,
      { cause: error },
    );
  });
  chmodSync(socketPath, 0o600);
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(socketPath);
  } catch {
    return;
  }
  if (!stat.isSocket()) {
    throw new OpenShellError(
      "failed_precondition",
      `${socketPath} exists and is not a socket; remove it or choose another --ssh-socket-path`,
    );
  }
  if (await acceptsConnections(socketPath)) {
    throw new OpenShellError(
      "failed_precondition",
      `${socketPath} is in use by another SSH server; stop it or choose another --ssh-socket-path`,
    );
  }
  rmSync(socketPath, { force: true });
}

function acceptsConnections(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(socketPath);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}
