import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { OpenShellError } from "@openshell/core";
import { ObjectTypes, type Store } from "../store/store.js";

const TOKEN_PREFIX = "oss1";
const SIGNING_KEY_ID = "supervisor-signing-key";
const SIGNING_KEY_BYTES = 32;

/**
 * Per-sandbox supervisor credentials: `oss1.<sandbox id>.<HMAC-SHA256>` signed with a key the
 * gateway creates once and keeps in its store, so credentials survive gateway restarts. A
 * credential names exactly one sandbox; deleting the sandbox makes it useless because every use
 * also checks that the sandbox exists.
 */
export class SupervisorCredentials {
  constructor(private readonly key: Buffer) {}

  /** Loads the signing key from the store, creating it on first start. */
  static async load(store: Store): Promise<SupervisorCredentials> {
    const existing = await store.getObject(ObjectTypes.secret, SIGNING_KEY_ID);
    if (existing) return new SupervisorCredentials(Buffer.from(existing.payload));
    const key = randomBytes(SIGNING_KEY_BYTES);
    const now = Date.now();
    await store.upsertObject({
      type: ObjectTypes.secret,
      id: SIGNING_KEY_ID,
      name: SIGNING_KEY_ID,
      payload: key,
      createdAtMs: now,
      updatedAtMs: now,
    });
    return new SupervisorCredentials(key);
  }

  issue(sandboxId: string): string {
    return `${TOKEN_PREFIX}.${sandboxId}.${this.sign(sandboxId).toString("base64url")}`;
  }

  /** Returns the sandbox id the credential was issued for; throws unauthenticated otherwise. */
  verify(token: string | undefined | null): string {
    if (!token) {
      throw new OpenShellError(
        "unauthenticated",
        "supervisor credential missing: send 'authorization: Bearer <OPENSHELL_SUPERVISOR_TOKEN>' (the compute driver provides the token)",
      );
    }
    const parts = token.split(".");
    if (parts.length !== 3 || parts[0] !== TOKEN_PREFIX || !parts[1] || !parts[2]) {
      throw new OpenShellError("unauthenticated", "supervisor credential is malformed");
    }
    const sandboxId = parts[1];
    const given = Buffer.from(parts[2], "base64url");
    const expected = this.sign(sandboxId);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new OpenShellError("unauthenticated", "supervisor credential signature is invalid");
    }
    return sandboxId;
  }

  /** Checks that `token` is the credential of `sandboxId`. */
  authorize(token: string | undefined, sandboxId: string): void {
    const owner = this.verify(token);
    if (owner !== sandboxId) {
      throw new OpenShellError(
        "permission_denied",
        `supervisor credential belongs to sandbox ${owner}, not ${sandboxId}`,
      );
    }
  }

  private sign(sandboxId: string): Buffer {
    return createHmac("sha256", this.key).update(`openshell-supervisor:${sandboxId}`).digest();
  }
}
