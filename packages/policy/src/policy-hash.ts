import { createHash } from "node:crypto";
import { clone, toBinary } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";

/**
 * Upstream's `deterministic_policy_hash` (§2.12): SHA-256 hex over the version (u32 little-endian),
 * the encoded filesystem, landlock and process sections (absent ones contribute nothing), then each
 * network policy in key order as key bytes + encoded rule. Query-matcher maps are encoded in key
 * order so that the hash does not depend on how a map was built.
 */
export function deterministicPolicyHash(policy: sandboxv1.SandboxPolicy): string {
  const hash = createHash("sha256");
  const version = Buffer.alloc(4);
  version.writeUInt32LE(policy.version >>> 0);
  hash.update(version);
  if (policy.filesystem !== undefined)
    hash.update(toBinary(sandboxv1.FilesystemPolicySchema, policy.filesystem));
  if (policy.landlock !== undefined) hash.update(toBinary(sandboxv1.LandlockPolicySchema, policy.landlock));
  if (policy.process !== undefined) hash.update(toBinary(sandboxv1.ProcessPolicySchema, policy.process));
  for (const key of Object.keys(policy.networkPolicies).sort(compareUtf8)) {
    const rule = policy.networkPolicies[key] as sandboxv1.NetworkPolicyRule;
    hash.update(Buffer.from(key, "utf8"));
    hash.update(toBinary(sandboxv1.NetworkPolicyRuleSchema, withSortedQueryMaps(rule)));
  }
  return hash.digest("hex");
}

/** One effective setting as `config_revision` sees it. */
export type RevisionSetting = {
  key: string;
  scope: number;
  value: sandboxv1.SettingValue | undefined;
};

/**
 * Upstream's `compute_config_revision` (§2.12): the first 8 bytes of SHA-256, read as a u64
 * little-endian, over the policy source (i32 LE), the policy hash (empty = no policy), then each
 * setting in key order: key bytes, scope (i32 LE), a type tag byte (0 string, 1 bool, 2 int,
 * 3 bytes) and the value bytes (bool as one byte, int as i64 LE). A setting without a value
 * contributes its key and scope only.
 */
export function configRevision(input: {
  policySource: number;
  policyHash: string;
  settings: ReadonlyArray<RevisionSetting>;
}): bigint {
  const hash = createHash("sha256");
  hash.update(int32LE(input.policySource));
  hash.update(Buffer.from(input.policyHash, "utf8"));
  const settings = [...input.settings].sort((a, b) => compareUtf8(a.key, b.key));
  for (const setting of settings) {
    hash.update(Buffer.from(setting.key, "utf8"));
    hash.update(int32LE(setting.scope));
    const value = setting.value?.value;
    switch (value?.case) {
      case "stringValue":
        hash.update(Buffer.from([0]));
        hash.update(Buffer.from(value.value, "utf8"));
        break;
      case "boolValue":
        hash.update(Buffer.from([1, value.value ? 1 : 0]));
        break;
      case "intValue": {
        const bytes = Buffer.alloc(8);
        bytes.writeBigInt64LE(value.value);
        hash.update(Buffer.from([2]));
        hash.update(bytes);
        break;
      }
      case "bytesValue":
        hash.update(Buffer.from([3]));
        hash.update(value.value);
        break;
      default:
        break;
    }
  }
  return hash.digest().readBigUInt64LE(0);
}

function int32LE(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeInt32LE(value | 0);
  return bytes;
}

/** Byte order of the UTF-8 encodings, as Rust sorts `String` keys. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function withSortedQueryMaps(rule: sandboxv1.NetworkPolicyRule): sandboxv1.NetworkPolicyRule {
  const copy = clone(sandboxv1.NetworkPolicyRuleSchema, rule);
  for (const endpoint of copy.endpoints) {
    for (const l7 of endpoint.rules) {
      if (l7.allow !== undefined) l7.allow.query = sortedMap(l7.allow.query);
    }
    for (const deny of endpoint.denyRules) deny.query = sortedMap(deny.query);
  }
  return copy;
}

function sortedMap<T>(map: { [key: string]: T }): { [key: string]: T } {
  const sorted: { [key: string]: T } = {};
  for (const key of Object.keys(map).sort(compareUtf8)) sorted[key] = map[key] as T;
  return sorted;
}
