import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseGatewayCommand } from "@openshell/gateway";
import { REPO } from "@openshell/testing/cli-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkKubernetesObject } from "./kubernetes-object-schema.js";
import {
  containerEnv,
  findObject,
  gatewayContainer,
  type K8sObject,
  KUBECTL,
  kubectlUnavailable,
  renderKustomize,
} from "./kustomize.js";

/**
 * deploy/kubernetes rendered offline with `kubectl kustomize` (Debian's kubernetes-client, whose
 * kustomize is v2.0.3, or any newer kubectl; KUBECTL picks the binary) and checked against the
 * Kubernetes object schemas: what `kubectl apply -k` would send, minus a cluster (none can be had
 * on these machines). The gateway's own flag parser reads the container's args and env.
 */
const DEPLOY = join(REPO, "deploy", "kubernetes");
const kubectlMissing = kubectlUnavailable();
if (kubectlMissing) {
  console.warn(
    `kustomize-render: SKIPPED, '${KUBECTL}' cannot run (${kubectlMissing}); install it with 'apt-get install kubernetes-client' (scripts/setup.sh does)`,
  );
}
/** "apiGroup resource[/names]" -> sorted verbs, so a rule split or merged differently still compares. */
function grants(rules: K8sObject[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const rule of rules) {
    for (const group of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        const names = rule.resourceNames ? `/${[...rule.resourceNames].sort().join(",")}` : "";
        const key = `${group || "core"} ${resource}${names}`;
        out[key] = [...new Set([...(out[key] ?? []), ...rule.verbs])].sort();
      }
    }
  }
  return out;
}

/** The gateway's config as it would parse inside the pod (env values only; no valueFrom used). */
function gatewayConfig(objects: K8sObject[]) {
  const container = gatewayContainer(objects);
  const parsed = parseGatewayCommand(container.args ?? [], containerEnv(container));
  if (parsed.kind !== "run") throw new Error(`the gateway would not run: ${parsed.kind}`);
  return parsed.config;
}

const everyString = (value: unknown): string[] =>
  typeof value === "string"
    ? [value]
    : Array.isArray(value)
      ? value.flatMap(everyString)
      : value && typeof value === "object"
        ? Object.entries(value).flatMap(([k, v]) => [k, ...everyString(v)])
        : [];

describe.skipIf(kubectlMissing !== undefined)("deploy/kubernetes renders valid objects", () => {
  let scratch = "";
  let base: K8sObject[] = [];
  let mtls: K8sObject[] = [];
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), "openshell-kustomize-"));
    base = renderKustomize(join(DEPLOY, "base"));
    mtls = renderKustomize(join(DEPLOY, "overlays", "mtls"));
  });
  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it("base: the expected objects, all valid against the Kubernetes schemas", () => {
    expect(base.map((o) => `${o.apiVersion} ${o.kind}/${o.metadata.name}`).sort()).toEqual([
      "apps/v1 StatefulSet/openshell",
      "rbac.authorization.k8s.io/v1 ClusterRole/openshell-driver",
      "rbac.authorization.k8s.io/v1 ClusterRoleBinding/openshell-driver",
      "rbac.authorization.k8s.io/v1 Role/openshell-driver",
      "rbac.authorization.k8s.io/v1 RoleBinding/openshell-driver",
      "v1 Namespace/openshell",
      "v1 Service/openshell",
      "v1 ServiceAccount/openshell",
    ]);
    for (const object of [...base, ...mtls]) {
      expect(checkKubernetesObject(object), `${object.kind}/${object.metadata.name}`).toEqual([]);
    }
    const clusterScoped = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding"]);
    for (const object of base) {
      expect(object.metadata.namespace).toBe(clusterScoped.has(object.kind) ? undefined : "openshell");
    }
  });

  it("RBAC: exactly the least the Kubernetes driver needs, bound to the gateway's account", () => {
    expect(grants(findObject(base, "Role", "openshell-driver").rules)).toEqual({
      "agents.x-k8s.io sandboxes": ["create", "delete", "get", "list", "patch", "update", "watch"],
      "core pods": ["get", "list", "watch"],
      "core events": ["get", "list", "watch"],
      "events.k8s.io events": ["get", "list", "watch"],
      "core secrets": ["create", "delete", "get", "list", "patch", "watch"],
      "core persistentvolumeclaims": ["delete", "get", "list", "patch", "watch"],
    });
    expect(grants(findObject(base, "ClusterRole", "openshell-driver").rules)).toEqual({
      "core nodes": ["get", "list"],
    });
    for (const kind of ["RoleBinding", "ClusterRoleBinding"]) {
      const binding = findObject(base, kind, "openshell-driver");
      expect(binding.roleRef).toEqual({
        apiGroup: "rbac.authorization.k8s.io",
        kind: kind.replace("Binding", ""),
        name: "openshell-driver",
      });
      expect(binding.subjects).toEqual([
        { kind: "ServiceAccount", name: "openshell", namespace: "openshell" },
      ]);
    }
    expect(findObject(base, "StatefulSet").spec.template.spec.serviceAccountName).toBe("openshell");
  });

  it("gateway: one replica, its store on a PVC, the kubernetes driver, probes on the health port", () => {
    const set = findObject(base, "StatefulSet");
    expect(set.spec.replicas).toBe(1);
    expect(set.spec.serviceName).toBe(findObject(base, "Service").metadata.name);
    expect(set.spec.volumeClaimTemplates.map((t: K8sObject) => t.metadata.name)).toEqual(["data"]);
    const container = gatewayContainer(base);
    expect(container.image).toMatch(/^openshell\/gateway:\d+\.\d+\.\d+/);
    expect(container.volumeMounts).toContainEqual({ name: "data", mountPath: "/var/lib/openshell" });
    // The driver's init containers copy the supervisor out of the gateway's own image, same tag.
    const supervisorImage = container.env.find((e: K8sObject) => e.name === "OPENSHELL_SUPERVISOR_IMAGE");
    expect(supervisorImage?.value).toBe(container.image);

    const config = gatewayConfig(base);
    expect(config.driver).toBe("kubernetes");
    expect(config.dbUrl).toBe("sqlite:/var/lib/openshell/gateway.db");
    expect(config.sandboxNamespace).toBe("openshell");
    expect(config.sandboxImage).toBeTruthy();
    expect(config.tls).toBeUndefined();
    expect(config.grpcEndpoint).toBe(`http://openshell.openshell.svc.cluster.local:${config.port}`);

    const ports = Object.fromEntries(container.ports.map((p: K8sObject) => [p.name, p.containerPort]));
    expect(ports).toEqual({ grpc: config.port, health: config.healthPort });
    expect(container.startupProbe.httpGet).toEqual({ path: "/healthz", port: "health" });
    expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "health" });
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "health" });
    const service = findObject(base, "Service");
    expect(service.spec.ports).toEqual([
      { name: "grpc", port: config.port, targetPort: "grpc", protocol: "TCP" },
    ]);
    expect(service.spec.selector).toEqual(set.spec.selector.matchLabels);
  });

  it("gateway: non-root, read-only root filesystem, no capabilities, no hostPath anywhere", () => {
    const pod = findObject(base, "StatefulSet").spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(gatewayContainer(base).securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    for (const object of [...base, ...mtls]) {
      expect(everyString(object)).not.toContain("hostPath");
      expect(everyString(object)).not.toContain("hostNetwork");
    }
  });

  it("overlays/mtls: TLS with client certificates from the three PKI Secrets", () => {
    const config = gatewayConfig(mtls);
    expect(config.tls).toEqual({
      cert: "/etc/openshell-tls/server/tls.crt",
      key: "/etc/openshell-tls/server/tls.key",
      clientCa: "/etc/openshell-tls/client-ca/ca.crt",
    });
    expect(config.grpcEndpoint).toBe(`https://openshell.openshell.svc.cluster.local:${config.port}`);
    const pod = findObject(mtls, "StatefulSet").spec.template.spec;
    const secretVolumes = Object.fromEntries(
      pod.volumes.filter((v: K8sObject) => v.secret).map((v: K8sObject) => [v.name, v.secret.secretName]),
    );
    expect(Object.values(secretVolumes).sort()).toEqual([
      "openshell-client-tls",
      "openshell-server-client-ca",
      "openshell-server-tls",
    ]);
    const mounts = gatewayContainer(mtls).volumeMounts as K8sObject[];
    for (const [volume, mountPath] of [
      ["server-tls", "/etc/openshell-tls/server"],
      ["client-ca", "/etc/openshell-tls/client-ca"],
      ["client-tls", "/etc/openshell-tls/client"],
    ]) {
      expect(mounts).toContainEqual({ name: volume, mountPath, readOnly: true });
    }
    // Everything else is the base's.
    const withoutTls = (objects: K8sObject[]) => objects.filter((o) => o.kind !== "StatefulSet");
    expect(withoutTls(mtls)).toEqual(withoutTls(base));
    // deploy/kubernetes itself is the mTLS overlay.
    expect(renderKustomize(DEPLOY)).toEqual(mtls);
  });

  it("the checks fail on a broken base (a misspelt field, a wrong type, a missing required field)", () => {
    const broken = join(scratch, "base");
    cpSync(join(DEPLOY, "base"), broken, { recursive: true });
    const file = join(broken, "statefulset.yaml");
    const original = readFileSync(file, "utf8");
    writeFileSync(
      file,
      original
        .replace("readinessProbe:", "readinessProbes:")
        .replace("periodSeconds: 10", 'periodSeconds: "10"')
        .replace("serviceName: openshell", "serviceName: openshell\n  selectors: {}"),
    );
    const problems = renderKustomize(broken).flatMap(checkKubernetesObject);
    expect(problems.sort()).toEqual([
      "StatefulSet.spec.selectors: unknown field (V1StatefulSetSpec has no such field)",
      'StatefulSet.spec.template.spec.containers[0].livenessProbe.periodSeconds: expected a number, got string "10"',
      "StatefulSet.spec.template.spec.containers[0].readinessProbes: unknown field (V1Container has no such field)",
    ]);
    writeFileSync(file, original.replace("- name: gateway\n", "- nam: gateway\n"));
    expect(renderKustomize(broken).flatMap(checkKubernetesObject).sort()).toEqual([
      "StatefulSet.spec.template.spec.containers[0].nam: unknown field (V1Container has no such field)",
      "StatefulSet.spec.template.spec.containers[0].name: required",
    ]);
  });
});
