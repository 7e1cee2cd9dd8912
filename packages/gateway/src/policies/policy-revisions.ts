import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import {
  PolicyStatus,
  type SandboxPolicyRevision,
  SandboxPolicyRevisionSchema,
  sandboxv1,
} from "@openshell/proto";
import type { PolicyRevisionRecord, PolicyRevisionStatus, Store } from "../store/store.js";

/** The sandbox id under which global policy revisions are kept (upstream's sentinel). */
export const GLOBAL_POLICY_SANDBOX_ID = "__global__";
/** Attempts at writing the next version when another writer took it first (upstream's value). */
export const MERGE_RETRY_LIMIT = 5;

const STATUS_TO_PROTO: Record<PolicyRevisionStatus, PolicyStatus> = {
  pending: PolicyStatus.PENDING,
  loaded: PolicyStatus.LOADED,
  failed: PolicyStatus.FAILED,
  superseded: PolicyStatus.SUPERSEDED,
};

export function decodePolicy(record: PolicyRevisionRecord): sandboxv1.SandboxPolicy {
  return fromBinary(sandboxv1.SandboxPolicySchema, record.policyPayload);
}

/** A stored revision on the wire; the policy itself only when asked (status, not list). */
export function revisionToProto(record: PolicyRevisionRecord, includePolicy: boolean): SandboxPolicyRevision {
  return create(SandboxPolicyRevisionSchema, {
    version: record.version,
    policyHash: record.policyHash,
    status: STATUS_TO_PROTO[record.status] ?? PolicyStatus.UNSPECIFIED,
    loadError: record.loadError ?? "",
    createdAtMs: BigInt(record.createdAtMs),
    loadedAtMs: BigInt(record.loadedAtMs ?? 0),
    policy: includePolicy ? decodePolicy(record) : undefined,
  });
}

/** What a write decided: the version that now holds the policy, and whether it is new. */
export interface RevisionWrite {
  version: number;
  hash: string;
  created: boolean;
}

/**
 * Writes the next policy revision of `sandboxId` computed by `next` from the latest one, with
 * optimistic retry: when another writer took that version (the store's unique (sandbox, version)),
 * `next` runs again against the new latest, up to MERGE_RETRY_LIMIT times, then ABORTED. `next`
 * returns undefined to write nothing (returning the version it names instead). Older pending and
 * loaded revisions are superseded by the new one.
 */
export async function writeNextRevision(
  store: Store,
  sandboxId: string,
  status: "pending" | "loaded",
  next: (
    latest: PolicyRevisionRecord | undefined,
  ) => { policy: sandboxv1.SandboxPolicy; hash: string } | { unchanged: number; hash: string },
  now: () => number = Date.now,
): Promise<RevisionWrite> {
  for (let attempt = 1; attempt <= MERGE_RETRY_LIMIT; attempt++) {
    const latest = await store.latestPolicyRevision(sandboxId);
    const decided = next(latest);
    if ("unchanged" in decided) return { version: decided.unchanged, hash: decided.hash, created: false };
    const version = (latest?.version ?? 0) + 1;
    const createdAtMs = now();
    try {
      await store.insertPolicyRevision({
        id: randomUUID(),
        sandboxId,
        version,
        policyPayload: toBinary(sandboxv1.SandboxPolicySchema, decided.policy),
        policyHash: decided.hash,
        status,
        loadError: undefined,
        createdAtMs,
        loadedAtMs: status === "loaded" ? createdAtMs : undefined,
      });
    } catch (error) {
      if (OpenShellError.from(error).code === "aborted") continue;
      throw error;
    }
    await store.supersedeOlderPolicyRevisions(sandboxId, version);
    return { version, hash: decided.hash, created: true };
  }
  throw new OpenShellError(
    "aborted",
    `policy update gave up after ${MERGE_RETRY_LIMIT} version conflict retries; retry the update`,
  );
}
