import { fromJson, type JsonObject, toBinary } from "@bufbuild/protobuf";
import { StructSchema } from "@bufbuild/protobuf/wkt";
import { checkEnvironmentEntry, OpenShellError } from "@openshell/core";
import { type SandboxSpec, sandboxv1, type Toleration } from "@openshell/proto";
import { checkSandboxEnvironmentName } from "./environment-rules.js";

/** Limits of upstream's validate_sandbox_spec. */
export const SPEC_LIMITS = {
  nameBytes: 253,
  providers: 32,
  logLevelBytes: 32,
  envEntries: 128,
  envKeyBytes: 256,
  envValueBytes: 8192,
  templateStringBytes: 1024,
  templateMapEntries: 128,
  structBytes: 65_536,
  policyBytes: 262_144,
} as const;

/** DNS-label style: what Kubernetes object names, hostnames and SSH host aliases all accept. */
const NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A Kubernetes Secret's name: a DNS subdomain (labels joined by dots). */
const SECRET_NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const TOLERATION_OPERATORS = new Set(["", "Exists", "Equal"]);
const TOLERATION_EFFECTS = new Set(["", "NoSchedule", "PreferNoSchedule", "NoExecute"]);

const invalid = (message: string): never => {
  throw new OpenShellError("invalid_argument", message);
};

export function validateSandboxName(name: string): void {
  const bytes = Buffer.byteLength(name);
  if (bytes > SPEC_LIMITS.nameBytes)
    invalid(`sandbox name is ${bytes} bytes; the limit is ${SPEC_LIMITS.nameBytes}`);
  if (!NAME_PATTERN.test(name)) {
    invalid(
      `sandbox name '${name}' is invalid: use lowercase letters, digits and '-', starting and ending with a letter or digit`,
    );
  }
}

export function validateSandboxSpec(spec: SandboxSpec | undefined): asserts spec is SandboxSpec {
  if (!spec) return invalid("spec is required");
  if (spec.providers.length > SPEC_LIMITS.providers) {
    invalid(`spec.providers has ${spec.providers.length} entries; the limit is ${SPEC_LIMITS.providers}`);
  }
  checkString(spec.logLevel, SPEC_LIMITS.logLevelBytes, "spec.log_level");
  checkEnvironment(spec.environment, "spec.environment");

  const template = spec.template;
  if (template) {
    checkString(template.image, SPEC_LIMITS.templateStringBytes, "spec.template.image");
    checkString(
      template.runtimeClassName,
      SPEC_LIMITS.templateStringBytes,
      "spec.template.runtime_class_name",
    );
    checkString(template.agentSocket, SPEC_LIMITS.templateStringBytes, "spec.template.agent_socket");
    checkMap(template.labels, "spec.template.labels");
    checkMap(template.annotations, "spec.template.annotations");
    checkMap(template.environment, "spec.template.environment");
    checkEnvironment(template.environment, "spec.template.environment");
    if (template.resources) checkStruct(encodedStructSize(template.resources), "spec.template.resources");
    if (template.volumeClaimTemplates) {
      checkStruct(encodedStructSize(template.volumeClaimTemplates), "spec.template.volume_claim_templates");
    }
    checkMap(template.nodeSelector, "spec.template.node_selector");
    checkTolerations(template.tolerations);
    checkImagePullSecrets(template.imagePullSecrets);
  }
  if (spec.policy) {
    const size = toBinary(sandboxv1.SandboxPolicySchema, spec.policy).length;
    if (size > SPEC_LIMITS.policyBytes)
      invalid(`spec.policy is ${size} bytes encoded; the limit is ${SPEC_LIMITS.policyBytes}`);
  }
}

function checkString(value: string, limit: number, field: string): void {
  const bytes = Buffer.byteLength(value);
  if (bytes > limit) invalid(`${field} is ${bytes} bytes; the limit is ${limit}`);
}

function checkMap(map: Record<string, string>, field: string): void {
  const entries = Object.entries(map);
  if (entries.length > SPEC_LIMITS.templateMapEntries) {
    invalid(`${field} has ${entries.length} entries; the limit is ${SPEC_LIMITS.templateMapEntries}`);
  }
  for (const [key, value] of entries) {
    checkString(key, SPEC_LIMITS.templateStringBytes, `${field} key '${key.slice(0, 40)}'`);
    checkString(value, SPEC_LIMITS.templateStringBytes, `${field}['${key}']`);
  }
}

/** What Kubernetes' own validation of a toleration refuses, said before a pod is ever made. */
function checkTolerations(tolerations: Toleration[]): void {
  if (tolerations.length > SPEC_LIMITS.templateMapEntries) {
    invalid(
      `spec.template.tolerations has ${tolerations.length} entries; the limit is ${SPEC_LIMITS.templateMapEntries}`,
    );
  }
  tolerations.forEach((toleration, index) => {
    const field = `spec.template.tolerations[${index}]`;
    checkString(toleration.key, SPEC_LIMITS.templateStringBytes, `${field}.key`);
    checkString(toleration.value, SPEC_LIMITS.templateStringBytes, `${field}.value`);
    if (!TOLERATION_OPERATORS.has(toleration.operator))
      invalid(`${field}.operator '${toleration.operator.slice(0, 40)}' is not Exists or Equal`);
    if (!TOLERATION_EFFECTS.has(toleration.effect))
      invalid(
        `${field}.effect '${toleration.effect.slice(0, 40)}' is not NoSchedule, PreferNoSchedule or NoExecute`,
      );
    if (toleration.operator === "Exists" && toleration.value)
      invalid(`${field}: operator Exists takes no value`);
    if (!toleration.key && toleration.operator !== "Exists")
      invalid(`${field}: a toleration without a key must use operator Exists`);
  });
}

function checkImagePullSecrets(names: string[]): void {
  if (names.length > SPEC_LIMITS.templateMapEntries) {
    invalid(
      `spec.template.image_pull_secrets has ${names.length} entries; the limit is ${SPEC_LIMITS.templateMapEntries}`,
    );
  }
  for (const name of names) {
    if (Buffer.byteLength(name) > SPEC_LIMITS.nameBytes || !SECRET_NAME_PATTERN.test(name))
      invalid(`spec.template.image_pull_secrets: '${name.slice(0, 40)}' is not a Secret name`);
  }
}

function checkEnvironment(env: Record<string, string>, field: string): void {
  const entries = Object.entries(env);
  if (entries.length > SPEC_LIMITS.envEntries) {
    invalid(`${field} has ${entries.length} entries; the limit is ${SPEC_LIMITS.envEntries}`);
  }
  for (const [key, value] of entries) {
    checkString(key, SPEC_LIMITS.envKeyBytes, `${field} key '${key.slice(0, 40)}…'`);
    checkString(value, SPEC_LIMITS.envValueBytes, `${field}['${key}']`);
    checkEnvironmentEntry(field, key, value);
    checkSandboxEnvironmentName(field, key);
  }
}

function checkStruct(size: number, field: string): void {
  if (size > SPEC_LIMITS.structBytes)
    invalid(`${field} is ${size} bytes encoded; the limit is ${SPEC_LIMITS.structBytes}`);
}

function encodedStructSize(json: JsonObject): number {
  return toBinary(StructSchema, fromJson(StructSchema, json)).length;
}
