import { spawnSync } from "node:child_process";
import { parseAllDocuments } from "yaml";

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are read field by field by the tests
export type K8sObject = Record<string, any>;

/** The kubectl the Kubernetes manifest tests use (KUBECTL, else `kubectl` on PATH). */
export const KUBECTL = process.env.KUBECTL || "kubectl";

/** Why `kubectl` cannot run, or undefined when it can. */
export function kubectlUnavailable(): string | undefined {
  const version = spawnSync(KUBECTL, ["version", "--client"], { encoding: "utf8" });
  if (version.error) return version.error.message;
  return version.status === 0 ? undefined : version.stderr.trim() || `exit ${version.status}`;
}

/** `kubectl kustomize DIR`, offline, parsed into plain objects (every field kept). */
export function renderKustomize(dir: string): K8sObject[] {
  const result = spawnSync(KUBECTL, ["kustomize", dir], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${result.stderr}`);
  // A plain YAML parser: @kubernetes/client-node's loadAllYaml drops the fields its models lack.
  return parseAllDocuments(result.stdout).map((document) => {
    if (document.errors.length > 0)
      throw new Error(`kubectl kustomize ${dir}: ${document.errors[0]?.message}`);
    return document.toJS() as K8sObject;
  });
}

/** The object of `kind` named `name` (default openshell); throws listing what there is. */
export function findObject(objects: K8sObject[], kind: string, name = "openshell"): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in ${objects.map((o) => `${o.kind}/${o.metadata?.name}`)}`);
  return found;
}

/** The gateway container of the openshell StatefulSet. */
export function gatewayContainer(objects: K8sObject[]): K8sObject {
  const containers: K8sObject[] = findObject(objects, "StatefulSet").spec.template.spec.containers;
  const container = containers.find((c) => c.name === "gateway");
  if (!container) throw new Error("the openshell StatefulSet has no container named gateway");
  return container;
}

/** The container's env as a map (plain values only; the manifests use no valueFrom). */
export function containerEnv(container: K8sObject): Record<string, string> {
  return Object.fromEntries((container.env ?? []).map((e: K8sObject) => [e.name, e.value]));
}
