import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { OpenShellError, randomLetters } from "@openshell/core";
import { type OpenShell, SandboxPhase, SshSessionSchema } from "@openshell/proto";
import type { SandboxRecords } from "../sandboxes/sandbox-records.js";
import { stoppedSandboxError } from "../sandboxes/stopped-sandbox.js";
import { ObjectTypes, type Store } from "../store/store.js";

const SSH_SESSION_TTL_MS = 24 * 60 * 60 * 1000;

export interface SshSessionDeps {
  records: SandboxRecords;
  store: Store;
  gatewayHost: string;
  gatewayPort: number;
  gatewayScheme: "http" | "https";
  connectPath: string;
}

type SshRpcs = Pick<ServiceImpl<typeof OpenShell>, "createSshSession" | "revokeSshSession">;

/** Mints and revokes the persisted tokens that authorize CONNECT /connect/ssh. */
export function createSshSessionRpcs(deps: SshSessionDeps): SshRpcs {
  return {
    async createSshSession(request) {
      if (!request.sandboxId) throw new OpenShellError("invalid_argument", "sandbox_id is required");
      const sandbox = await deps.records.get(request.sandboxId);
      if (!sandbox) throw new OpenShellError("not_found", `sandbox ${request.sandboxId} not found`);
      const stopped = stoppedSandboxError(sandbox);
      if (stopped) throw stopped;
      if (sandbox.phase !== SandboxPhase.READY)
        throw new OpenShellError("failed_precondition", "sandbox is not ready");
      const now = Date.now();
      const token = randomUUID();
      const session = create(SshSessionSchema, {
        id: token,
        sandboxId: sandbox.id,
        token,
        createdAtMs: BigInt(now),
        revoked: false,
        name: randomLetters(6),
        expiresAtMs: BigInt(now + SSH_SESSION_TTL_MS),
      });
      await deps.store.insertObject({
        type: ObjectTypes.sshSession,
        id: token,
        // Unique per type: the token keeps two sessions from colliding on a random name.
        name: token,
        payload: toBinary(SshSessionSchema, session),
        createdAtMs: now,
        updatedAtMs: now,
      });
      return {
        sandboxId: sandbox.id,
        token,
        gatewayHost: deps.gatewayHost,
        gatewayPort: deps.gatewayPort,
        gatewayScheme: deps.gatewayScheme,
        connectPath: deps.connectPath,
        hostKeyFingerprint: "",
        expiresAtMs: session.expiresAtMs,
      };
    },

    async revokeSshSession(request) {
      if (!request.token) throw new OpenShellError("invalid_argument", "token is required");
      const row = await deps.store.getObject(ObjectTypes.sshSession, request.token);
      if (!row) return { revoked: false };
      const session = fromBinary(SshSessionSchema, row.payload);
      session.revoked = true;
      await deps.store.updateObject(
        ObjectTypes.sshSession,
        row.id,
        toBinary(SshSessionSchema, session),
        Date.now(),
      );
      return { revoked: true };
    },
  };
}

/** Upstream reaps expired and revoked SSH sessions hourly. */
export const SSH_SESSION_REAP_INTERVAL_MS = 60 * 60 * 1000;

/** Deletes SSH sessions that are revoked or expired; returns how many went. */
export async function reapSshSessions(store: Store, nowMs = Date.now()): Promise<number> {
  const rows = await store.listObjects(ObjectTypes.sshSession, { limit: 100_000, offset: 0 });
  let reaped = 0;
  for (const row of rows) {
    const session = fromBinary(SshSessionSchema, row.payload);
    const expired = session.expiresAtMs > 0n && BigInt(nowMs) > session.expiresAtMs;
    if (session.revoked || expired) {
      if (await store.deleteObject(ObjectTypes.sshSession, row.id)) reaped++;
    }
  }
  return reaped;
}
