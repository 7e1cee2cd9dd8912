/**
 * A FAKE Kubernetes API server for tests: no cluster can be had on these machines, so the
 * Kubernetes driver's tests run against this one instead. It serves, over HTTPS on 127.0.0.1 with a
 * throw-away CA (client-node 2 refuses plain HTTP unless told to skip TLS verification; `tls: false`
 * serves HTTP with `insecure-skip-tls-verify` in the kubeconfig) and bearer-token auth (any token),
 * what a client built on @kubernetes/client-node needs, with the real apiserver's REST and watch
 * semantics:
 *
 * - discovery: `/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`, `/version`;
 * - namespaced CRUD on `sandboxes.agents.x-k8s.io` (at every served version, `v1alpha1` by default),
 *   pods, secrets, persistentvolumeclaims, events, and cluster-scoped nodes and namespaces: GET,
 *   LIST (labelSelector, fieldSelector), POST, PUT (409 Conflict on a stale resourceVersion), PATCH
 *   (`application/json-patch+json`, `application/merge-patch+json`, strategic merge treated as
 *   merge), DELETE (propagationPolicy, finalizers), and the `status` subresource of sandboxes and
 *   pods;
 * - one global resourceVersion counter; `?watch=true&resourceVersion=N` streams
 *   `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK","object":…}` lines for changes after N; a watch from
 *   below the compaction point gets an ERROR event with a 410 `Expired` Status (or, with
 *   `expiredAsHttp`, an HTTP 410), as the apiserver's watch cache does;
 * - errors as `metav1.Status` (kube-status.ts);
 * - ownerReferences garbage collection: deleting an owner deletes its dependents (background or
 *   foreground) or strips their reference (`Orphan`).
 *
 * Faults for tests: `forbid(verb, plural)` answers 403 as RBAC would, `removeSandboxCrd()` stops
 * serving the CRD (discovery and paths 404), `breakWatches()` ends every watch stream mid-stream,
 * `compact()` moves the compaction point, `suspend()`/`resume()` make the server unreachable and
 * back on the same port.
 *
 * Simplifications (it is a fake): pods are deleted at once (no grace period: the test node agent
 * sees the DELETED event and removes the containers), no admission, no defaulting beyond
 * metadata, no protobuf, no server-side apply, lists ignore `resourceVersion` and `limit`.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { join } from "node:path";
import { generateGatewayPki } from "@openshell/bootstrap";
import {
  jsonPatch,
  type KubeObject,
  mergePatch,
  type ObjectPredicate,
  parseFieldSelector,
  parseLabelSelector,
} from "./kube-selectors.js";
import {
  alreadyExists,
  badRequest,
  conflict,
  expired,
  forbidden,
  invalid,
  KubeStatusError,
  methodNotAllowed,
  notFound,
  pathNotFound,
  type StatusTarget,
  success,
  unsupportedMediaType,
} from "./kube-status.js";

export type { KubeObject } from "./kube-selectors.js";

export const SANDBOX_GROUP = "agents.x-k8s.io";
const SERVICE_ACCOUNT_DIR = "var/run/secrets/kubernetes.io/serviceaccount";

export interface ResourceType extends StatusTarget {
  /** "" for the core group. */
  group: string;
  plural: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  /** Writes through the main path keep `status`; `/status` writes keep everything else. */
  statusSubresource: boolean;
  /** DELETE answers a Status (custom resources) rather than the deleted object. */
  deleteReturnsStatus: boolean;
  shortNames?: string[];
}

const CORE_TYPES: readonly ResourceType[] = Object.freeze([
  core("pods", "Pod", true, true),
  core("secrets", "Secret", true, false),
  core("persistentvolumeclaims", "PersistentVolumeClaim", true, true),
  core("events", "Event", true, false),
  core("nodes", "Node", false, true),
  core("namespaces", "Namespace", false, true),
]);

function core(plural: string, kind: string, namespaced: boolean, statusSubresource: boolean): ResourceType {
  return {
    group: "",
    plural,
    kind,
    listKind: `${kind}List`,
    namespaced,
    statusSubresource,
    deleteReturnsStatus: false,
  };
}

const SANDBOX_TYPE: ResourceType = Object.freeze({
  group: SANDBOX_GROUP,
  plural: "sandboxes",
  kind: "Sandbox",
  listKind: "SandboxList",
  namespaced: true,
  statusSubresource: true,
  deleteReturnsStatus: true,
});

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

/** One change in the store, as history keeps it and in-process subscribers get it. */
export interface StoreChange {
  resourceVersion: number;
  type: WatchEventType;
  resource: ResourceType;
  object: KubeObject;
  /** The object before this change (absent for ADDED). */
  previous?: KubeObject;
}

export interface FakeApiServerOptions {
  /** Versions of agents.x-k8s.io served, preferred last (default ["v1alpha1"]). */
  sandboxVersions?: string[];
  /** Namespaces that exist from the start (default ["default"]); others are created by POST. */
  namespaces?: string[];
  /** How often a watch with allowWatchBookmarks=true gets a BOOKMARK (default 10 s). */
  bookmarkIntervalMs?: number;
  /** A compacted watch gets HTTP 410 instead of the apiserver's usual 200 + ERROR event. */
  expiredAsHttp?: boolean;
  /** The user named in 403 messages (default the in-cluster gateway's service account). */
  user?: string;
  /** Keep at most this many changes; older ones are compacted (default 10 000). */
  historyLimit?: number;
  /** HTTPS with a fresh CA (default true); false serves plain HTTP. */
  tls?: boolean;
}

interface WatchStream {
  resource: ResourceType;
  namespace: string | undefined;
  matches: ObjectPredicate;
  response: http.ServerResponse;
  version: string;
}

interface ParsedPath {
  resource: ResourceType;
  version: string;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
}

export class FakeKubernetesApiServer {
  private server: http.Server | undefined;
  private readonly tls: boolean;
  private caCert = "";
  private readonly sockets = new Set<Socket>();
  private readonly objects = new Map<string, KubeObject>();
  private readonly history: StoreChange[] = [];
  private readonly watches = new Set<WatchStream>();
  private readonly listeners = new Set<(change: StoreChange) => void>();
  private readonly forbidden = new Set<string>();
  private readonly sandboxVersions: string[];
  private readonly bookmarkIntervalMs: number;
  private readonly historyLimit: number;
  private readonly user: string;
  private readonly expiredAsHttp: boolean;
  private resourceVersion = 1;
  private compactedBelow = 0;
  private sandboxCrdServed = true;
  private port = 0;
  private readonly requestLog: { method: string; path: string; contentType?: string }[] = [];

  constructor(options: FakeApiServerOptions = {}) {
    this.sandboxVersions = options.sandboxVersions ?? ["v1alpha1"];
    this.bookmarkIntervalMs = options.bookmarkIntervalMs ?? 10_000;
    this.historyLimit = options.historyLimit ?? 10_000;
    this.user = options.user ?? "system:serviceaccount:openshell:openshell";
    this.expiredAsHttp = options.expiredAsHttp ?? false;
    this.tls = options.tls ?? true;
    for (const namespace of options.namespaces ?? ["default"]) {
      this.create(this.type("namespaces"), { metadata: { name: namespace } });
    }
  }

  /** Listens on 127.0.0.1 (a free port the first time, the same one after suspend()). */
  async start(): Promise<void> {
    const server = this.server ?? (await this.createServer());
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.port = (server.address() as AddressInfo).port;
  }

  private async createServer(): Promise<http.Server> {
    const handler = (request: http.IncomingMessage, response: http.ServerResponse) => {
      void this.handle(request, response);
    };
    let server: http.Server;
    if (this.tls) {
      const pki = await generateGatewayPki({ gatewayName: "fake-kubernetes" });
      this.caCert = pki.caCert;
      server = https.createServer({ key: pki.serverKey, cert: pki.serverCert }, handler);
    } else {
      server = http.createServer(handler);
    }
    // A TLS server reports the raw socket here too, which is what suspend() has to destroy.
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    this.server = server;
    return server;
  }

  get url(): string {
    return `${this.tls ? "https" : "http"}://127.0.0.1:${this.port}`;
  }

  /** The CA certificate (PEM) that signed the server's certificate ("" without TLS). */
  get certificateAuthority(): string {
    return this.caCert;
  }

  /**
   * What a pod's service account gives client-node's `loadFromCluster(prefix)`: `token`, `ca.crt`
   * and `namespace` under `<prefix>/var/run/secrets/kubernetes.io/serviceaccount/`, plus the
   * KUBERNETES_SERVICE_HOST/PORT environment to set.
   */
  writeInClusterFiles(prefix: string, namespace: string): Record<string, string> {
    const dir = join(prefix, SERVICE_ACCOUNT_DIR);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "token"), "fake-in-cluster-token");
    writeFileSync(join(dir, "ca.crt"), this.caCert);
    writeFileSync(join(dir, "namespace"), namespace);
    return { KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: String(this.port) };
  }

  /** A kubeconfig (JSON is YAML) naming this server, for `--kubeconfig` or KubeConfig.loadFromString. */
  kubeconfig(options: { namespace?: string; context?: string } = {}): string {
    const context = options.context ?? "fake";
    return JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "fake-cluster",
          cluster: this.tls
            ? { server: this.url, "certificate-authority-data": Buffer.from(this.caCert).toString("base64") }
            : { server: this.url, "insecure-skip-tls-verify": true },
        },
      ],
      users: [{ name: "fake-user", user: { token: "fake-token" } }],
      contexts: [
        {
          name: context,
          context: {
            cluster: "fake-cluster",
            user: "fake-user",
            ...(options.namespace ? { namespace: options.namespace } : {}),
          },
        },
      ],
      "current-context": context,
    });
  }

  /** Every request so far (method, path with query, Content-Type), for asserting what a client sent. */
  get requests(): readonly { method: string; path: string; contentType?: string }[] {
    return this.requestLog;
  }

  get currentResourceVersion(): number {
    return this.resourceVersion;
  }

  // ---- faults --------------------------------------------------------------------------------

  /** Answers `verb` (get, list, watch, create, update, patch, delete) on `plural` with 403 until allow(). */
  forbid(verb: string, plural: string): void {
    this.forbidden.add(`${verb} ${plural}`);
  }

  allow(verb: string, plural: string): void {
    this.forbidden.delete(`${verb} ${plural}`);
  }

  /** As if the agent-sandbox CRD were deleted: its objects go (DELETED events), discovery and paths 404. */
  removeSandboxCrd(): void {
    for (const object of this.list(SANDBOX_TYPE, undefined)) this.remove(SANDBOX_TYPE, object, "Background");
    this.sandboxCrdServed = false;
    for (const watch of this.watches) if (watch.resource === SANDBOX_TYPE) watch.response.destroy();
  }

  installSandboxCrd(): void {
    this.sandboxCrdServed = true;
  }

  /** Ends every open watch: `abrupt` (default) destroys the connection mid-stream, else a clean end. */
  breakWatches(options: { abrupt?: boolean } = {}): number {
    const count = this.watches.size;
    for (const watch of [...this.watches]) {
      if (options.abrupt === false) watch.response.end();
      else watch.response.destroy();
      this.watches.delete(watch);
    }
    return count;
  }

  /** Forgets history up to `resourceVersion` (default: all of it): older watches get 410 Expired. */
  compact(resourceVersion = this.resourceVersion): void {
    this.compactedBelow = Math.max(this.compactedBelow, resourceVersion);
    while (
      this.history.length > 0 &&
      (this.history[0] as StoreChange).resourceVersion <= this.compactedBelow
    ) {
      this.history.shift();
    }
  }

  /** Unreachable: stops listening and drops every connection (the store stays). */
  async suspend(): Promise<void> {
    const server = this.server;
    if (!server?.listening) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.watches.clear();
    await closed;
  }

  async resume(): Promise<void> {
    await this.start();
  }

  async close(): Promise<void> {
    await this.suspend();
  }

  // ---- in-process store (the fake controller and node agent use it) --------------------------

  /** The type registered for `plural` (sandboxes, pods, secrets, …). */
  type(plural: string): ResourceType {
    if (plural === "sandboxes") return SANDBOX_TYPE;
    const found = CORE_TYPES.find((type) => type.plural === plural);
    if (!found) throw new Error(`fake API server: no resource ${plural}`);
    return found;
  }

  subscribe(listener: (change: StoreChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(resource: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    const object = this.objects.get(this.key(resource, namespace, name));
    return object ? structuredClone(object) : undefined;
  }

  list(
    resource: ResourceType,
    namespace: string | undefined,
    matches: ObjectPredicate = () => true,
  ): KubeObject[] {
    const prefix = `${resource.group}/${resource.plural}/${namespace ?? ""}`;
    const items: KubeObject[] = [];
    for (const [key, object] of this.objects) {
      if (!key.startsWith(`${resource.group}/${resource.plural}/`)) continue;
      if (namespace !== undefined && !key.startsWith(`${prefix}/`)) continue;
      if (matches(object)) items.push(structuredClone(object));
    }
    // The apiserver lists in key order: namespace, then name.
    const order = (object: KubeObject) => `${object.metadata?.namespace ?? ""}/${object.metadata?.name}`;
    return items.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
  }

  create(resource: ResourceType, body: KubeObject, namespace?: string): KubeObject {
    const metadata = { ...(body.metadata ?? {}) };
    if (!metadata.name && typeof metadata.generateName === "string") {
      metadata.name = `${metadata.generateName}${randomUUID().slice(0, 5)}`;
    }
    const name = metadata.name;
    if (!name) throw invalid(resource, "", "metadata.name", "", "name or generateName is required");
    if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) {
      throw invalid(
        resource,
        name,
        "metadata.name",
        name,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
      );
    }
    const ns = resource.namespaced ? (namespace ?? metadata.namespace ?? "default") : undefined;
    if (resource.namespaced && metadata.namespace !== undefined && metadata.namespace !== ns) {
      throw badRequest(
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    if (ns !== undefined && !this.objects.has(this.key(this.type("namespaces"), undefined, ns))) {
      throw notFound(this.type("namespaces"), ns);
    }
    const key = this.key(resource, ns, name);
    if (this.objects.has(key)) throw alreadyExists(resource, name);
    const object: KubeObject = structuredClone(body);
    object.metadata = {
      ...metadata,
      name,
      ...(ns !== undefined ? { namespace: ns } : {}),
      uid: randomUUID(),
      creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      generation: 1,
    };
    delete object.metadata.deletionTimestamp;
    if (resource.plural === "pods") object.status = { phase: "Pending", qosClass: "BestEffort" };
    else if (resource.group !== "" && resource.statusSubresource) delete object.status;
    object.apiVersion ??= this.apiVersion(resource);
    object.kind ??= resource.kind;
    this.commit(resource, key, "ADDED", object, undefined);
    return structuredClone(object);
  }

  /** PUT semantics: a stale `metadata.resourceVersion` is a 409 Conflict; `subresource` "status" writes only status. */
  update(resource: ResourceType, body: KubeObject, namespace?: string, subresource?: string): KubeObject {
    const name = body.metadata?.name ?? "";
    const ns = resource.namespaced ? (namespace ?? body.metadata?.namespace ?? "default") : undefined;
    const key = this.key(resource, ns, name);
    const current = this.objects.get(key);
    if (!current) throw notFound(resource, name);
    const expected = body.metadata?.resourceVersion;
    if (expected && expected !== current.metadata?.resourceVersion) throw conflict(resource, name);
    let next: KubeObject;
    if (subresource === "status") {
      next = { ...structuredClone(current), status: structuredClone(body.status) };
    } else {
      next = structuredClone(body);
      next.metadata = {
        ...(body.metadata ?? {}),
        name,
        ...(ns !== undefined ? { namespace: ns } : {}),
        uid: current.metadata?.uid,
        creationTimestamp: current.metadata?.creationTimestamp,
        generation: current.metadata?.generation,
        ...(current.metadata?.deletionTimestamp
          ? { deletionTimestamp: current.metadata.deletionTimestamp }
          : {}),
      };
      if (resource.statusSubresource) next.status = structuredClone(current.status);
      if (JSON.stringify(next.spec) !== JSON.stringify(current.spec)) {
        next.metadata.generation = Number(current.metadata?.generation ?? 1) + 1;
      }
      next.apiVersion = current.apiVersion;
      next.kind = current.kind;
    }
    if (JSON.stringify(strip(next)) === JSON.stringify(strip(current))) return structuredClone(current);
    this.commit(resource, key, "MODIFIED", next, current);
    // Finalizers emptied on an object being deleted: now it goes.
    if (next.metadata?.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0) {
      this.remove(resource, next, "Background");
    }
    return structuredClone(this.objects.get(key) ?? next);
  }

  /**
   * Deletes `object`: with finalizers it only gets a deletionTimestamp; otherwise it goes, and its
   * dependents (ownerReferences) are deleted (Background, Foreground) or orphaned (Orphan).
   */
  remove(resource: ResourceType, object: KubeObject, propagation: string): KubeObject {
    const name = object.metadata?.name ?? "";
    const ns = resource.namespaced ? object.metadata?.namespace : undefined;
    const key = this.key(resource, ns, name);
    const current = this.objects.get(key);
    if (!current) throw notFound(resource, name);
    const uid = String(current.metadata?.uid);
    if ((current.metadata?.finalizers ?? []).length > 0) {
      if (current.metadata?.deletionTimestamp) return structuredClone(current);
      const next = structuredClone(current);
      (next.metadata as Record<string, unknown>).deletionTimestamp = new Date()
        .toISOString()
        .replace(/\.\d+Z$/, "Z");
      this.commit(resource, key, "MODIFIED", next, current);
      return structuredClone(next);
    }
    if (propagation === "Foreground") this.collectDependents(uid, "Background");
    this.objects.delete(key);
    const deleted = structuredClone(current);
    this.commit(resource, key, "DELETED", deleted, current);
    if (propagation === "Orphan") this.orphanDependents(uid);
    else if (propagation !== "Foreground") setImmediate(() => this.collectDependents(uid, "Background"));
    return structuredClone(deleted);
  }

  // ---- internals -------------------------------------------------------------------------------

  private collectDependents(ownerUid: string, propagation: string): void {
    for (const [key, object] of [...this.objects]) {
      if (!(object.metadata?.ownerReferences ?? []).some((reference) => reference.uid === ownerUid)) continue;
      const resource = this.typeOfKey(key);
      if (resource && this.objects.has(key)) this.remove(resource, object, propagation);
    }
  }

  private orphanDependents(ownerUid: string): void {
    for (const [key, object] of [...this.objects]) {
      const references = object.metadata?.ownerReferences ?? [];
      if (!references.some((reference) => reference.uid === ownerUid)) continue;
      const resource = this.typeOfKey(key);
      if (!resource) continue;
      const next = structuredClone(object);
      (next.metadata as Record<string, unknown>).ownerReferences = references.filter(
        (reference) => reference.uid !== ownerUid,
      );
      this.commit(resource, key, "MODIFIED", next, object);
    }
  }

  private typeOfKey(key: string): ResourceType | undefined {
    const [group, plural] = key.split("/");
    if (group === SANDBOX_GROUP) return SANDBOX_TYPE;
    return CORE_TYPES.find((type) => type.plural === plural);
  }

  private commit(
    resource: ResourceType,
    key: string,
    type: WatchEventType,
    object: KubeObject,
    previous: KubeObject | undefined,
  ): void {
    this.resourceVersion += 1;
    (object.metadata as Record<string, unknown>).resourceVersion = String(this.resourceVersion);
    if (type !== "DELETED") this.objects.set(key, object);
    const change: StoreChange = {
      resourceVersion: this.resourceVersion,
      type,
      resource,
      object: structuredClone(object),
      ...(previous ? { previous: structuredClone(previous) } : {}),
    };
    this.history.push(change);
    if (this.history.length > this.historyLimit)
      this.compact((this.history[0] as StoreChange).resourceVersion);
    for (const watch of this.watches) this.deliver(watch, change);
    for (const listener of [...this.listeners]) listener(change);
  }

  private deliver(watch: WatchStream, change: StoreChange): void {
    if (change.resource !== watch.resource) return;
    const namespace = change.object.metadata?.namespace;
    if (watch.namespace !== undefined && namespace !== watch.namespace) return;
    const now = change.type !== "DELETED" && watch.matches(change.object);
    const before = change.previous !== undefined && watch.matches(change.previous);
    let type: string | undefined;
    if (change.type === "DELETED") type = before ? "DELETED" : undefined;
    else if (now && before) type = "MODIFIED";
    else if (now) type = "ADDED";
    else if (before) type = "DELETED";
    if (!type) return;
    const object = this.render(change.object, watch.resource, watch.version);
    watch.response.write(`${JSON.stringify({ type, object })}\n`);
  }

  private key(resource: ResourceType, namespace: string | undefined, name: string): string {
    return `${resource.group}/${resource.plural}/${resource.namespaced ? (namespace ?? "") : ""}/${name}`;
  }

  private apiVersion(resource: ResourceType, version?: string): string {
    if (resource.group === "") return "v1";
    return `${resource.group}/${version ?? this.sandboxVersions[this.sandboxVersions.length - 1]}`;
  }

  /** The object as served at `version` (a custom resource is stored once, served at every version). */
  private render(object: KubeObject, resource: ResourceType, version: string): KubeObject {
    return { ...object, apiVersion: this.apiVersion(resource, version), kind: resource.kind };
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://fake");
    const method = request.method ?? "GET";
    this.requestLog.push({
      method,
      path: `${url.pathname}${url.search}`,
      ...(request.headers["content-type"] ? { contentType: request.headers["content-type"] } : {}),
    });
    try {
      const body = await readBody(request);
      const discovery = this.discovery(url.pathname);
      if (discovery !== undefined) {
        if (method !== "GET") throw methodNotAllowed();
        return sendJson(response, 200, discovery);
      }
      const path = this.parsePath(url.pathname);
      if (!path) throw pathNotFound();
      await this.serve(path, method, url, body, request, response);
    } catch (error) {
      if (response.headersSent) {
        response.destroy();
        return;
      }
      if (error instanceof KubeStatusError) sendJson(response, error.status.code, error.status);
      else {
        sendJson(response, 500, {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message: error instanceof Error ? error.message : String(error),
          reason: "InternalError",
          code: 500,
        });
      }
    }
  }

  private async serve(
    path: ParsedPath,
    method: string,
    url: URL,
    body: string,
    request: http.IncomingMessage,
    response: http.ServerResponse,
  ): Promise<void> {
    const { resource, namespace, name, subresource, version } = path;
    const isWatch = url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1";
    const verb = verbOf(method, name, isWatch);
    if (this.forbidden.has(`${verb} ${resource.plural}`)) {
      throw forbidden(resource, name, verb, this.user, namespace);
    }
    if (subresource !== undefined && (subresource !== "status" || !resource.statusSubresource)) {
      throw pathNotFound();
    }
    switch (verb) {
      case "get": {
        const object = this.get(resource, namespace, name as string);
        if (!object) throw notFound(resource, name as string);
        return sendJson(response, 200, this.render(object, resource, version));
      }
      case "list": {
        const matches = selectorOf(url);
        const items = this.list(resource, namespace, matches).map((object) => {
          const rendered = this.render(object, resource, version);
          if (resource.group === "") {
            delete rendered.apiVersion;
            delete rendered.kind;
          }
          return rendered;
        });
        return sendJson(response, 200, {
          kind: resource.listKind,
          apiVersion: this.apiVersion(resource, version),
          metadata: { resourceVersion: String(this.resourceVersion) },
          items,
        });
      }
      case "watch":
        return this.watch(path, url, response);
      case "create": {
        const object = this.create(resource, parseJson(body), namespace);
        return sendJson(response, 201, this.render(object, resource, version));
      }
      case "update": {
        const parsed = parseJson(body);
        if (parsed.metadata?.name !== name) {
          throw badRequest("the name of the object does not match the name on the URL");
        }
        const object = this.update(resource, parsed, namespace, subresource);
        return sendJson(response, 200, this.render(object, resource, version));
      }
      case "patch": {
        const current = this.get(resource, namespace, name as string);
        if (!current) throw notFound(resource, name as string);
        const contentType =
          String(request.headers["content-type"] ?? "")
            .split(";")[0]
            ?.trim() ?? "";
        let patched: KubeObject;
        if (contentType === "application/json-patch+json") {
          patched = jsonPatch(current, JSON.parse(body), (why) =>
            invalid(resource, name as string, "patch", null, why),
          ) as KubeObject;
        } else if (
          contentType === "application/merge-patch+json" ||
          contentType === "application/strategic-merge-patch+json"
        ) {
          patched = mergePatch(current, JSON.parse(body)) as KubeObject;
        } else {
          throw unsupportedMediaType(contentType);
        }
        patched.metadata = { ...(patched.metadata ?? {}), name };
        // A patch carries no precondition unless it names a resourceVersion itself.
        const patchedVersion = patched.metadata.resourceVersion;
        if (patchedVersion === current.metadata?.resourceVersion) delete patched.metadata.resourceVersion;
        const object = this.update(resource, patched, namespace, subresource);
        return sendJson(response, 200, this.render(object, resource, version));
      }
      case "delete": {
        const current = this.get(resource, namespace, name as string);
        if (!current) throw notFound(resource, name as string);
        const options = body ? parseJson(body) : {};
        const preconditions = options.preconditions as { uid?: string; resourceVersion?: string } | undefined;
        if (
          (preconditions?.uid && preconditions.uid !== current.metadata?.uid) ||
          (preconditions?.resourceVersion &&
            preconditions.resourceVersion !== current.metadata?.resourceVersion)
        ) {
          throw conflict(resource, name as string);
        }
        const propagation = String(
          url.searchParams.get("propagationPolicy") ?? options.propagationPolicy ?? "Background",
        );
        const deleted = this.remove(resource, current, propagation);
        if (resource.deleteReturnsStatus && !deleted.metadata?.deletionTimestamp) {
          return sendJson(response, 200, success(resource, name as string, String(deleted.metadata?.uid)));
        }
        return sendJson(response, 200, this.render(deleted, resource, version));
      }
      default:
        throw methodNotAllowed();
    }
  }

  private watch(path: ParsedPath, url: URL, response: http.ServerResponse): void {
    const { resource, namespace, version } = path;
    const requested = url.searchParams.get("resourceVersion");
    const from = requested ? Number(requested) : 0;
    if (requested && requested !== "0" && !Number.isInteger(from)) {
      throw badRequest(`invalid resourceVersion ${JSON.stringify(requested)}`);
    }
    const tooOld = from > 0 && from < this.compactedBelow;
    if (tooOld && this.expiredAsHttp) throw expired(from, this.compactedBelow);
    response.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
    response.flushHeaders();
    if (tooOld) {
      response.end(
        `${JSON.stringify({ type: "ERROR", object: expired(from, this.compactedBelow).status })}\n`,
      );
      return;
    }
    const watch: WatchStream = { resource, namespace, matches: selectorOf(url), response, version };
    if (from === 0) {
      // No resourceVersion (or "0"): the current state as synthetic ADDED events, then changes.
      for (const object of this.list(resource, namespace, watch.matches)) {
        response.write(
          `${JSON.stringify({ type: "ADDED", object: this.render(object, resource, version) })}\n`,
        );
      }
    } else {
      for (const change of this.history) if (change.resourceVersion > from) this.deliver(watch, change);
    }
    this.watches.add(watch);
    const timers: NodeJS.Timeout[] = [];
    if (url.searchParams.get("allowWatchBookmarks") === "true") {
      timers.push(
        setInterval(() => {
          const object = {
            kind: resource.kind,
            apiVersion: this.apiVersion(resource, version),
            metadata: { resourceVersion: String(this.resourceVersion) },
          };
          response.write(`${JSON.stringify({ type: "BOOKMARK", object })}\n`);
        }, this.bookmarkIntervalMs),
      );
    }
    const timeoutSeconds = Number(url.searchParams.get("timeoutSeconds") ?? 0);
    if (timeoutSeconds > 0) timers.push(setTimeout(() => response.end(), timeoutSeconds * 1000));
    const done = () => {
      for (const timer of timers) clearTimeout(timer);
      this.watches.delete(watch);
    };
    // The response's close, not the request's (which fires once its empty body is read).
    response.once("close", done);
  }

  private discovery(pathname: string): unknown {
    const path = pathname.replace(/\/+$/, "") || "/";
    if (path === "/version") {
      return { major: "1", minor: "33", gitVersion: "v1.33.0-fake", platform: "linux/amd64" };
    }
    if (path === "/healthz" || path === "/readyz" || path === "/livez") return "ok";
    if (path === "/api") {
      return {
        kind: "APIVersions",
        versions: ["v1"],
        serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: `127.0.0.1:${this.port}` }],
      };
    }
    if (path === "/api/v1") return resourceList("v1", CORE_TYPES);
    if (path === "/apis") {
      return {
        kind: "APIGroupList",
        apiVersion: "v1",
        groups: this.sandboxCrdServed ? [this.sandboxGroup()] : [],
      };
    }
    if (!this.sandboxCrdServed) return undefined;
    if (path === `/apis/${SANDBOX_GROUP}`)
      return { kind: "APIGroup", apiVersion: "v1", ...this.sandboxGroup() };
    for (const version of this.sandboxVersions) {
      if (path === `/apis/${SANDBOX_GROUP}/${version}`)
        return resourceList(`${SANDBOX_GROUP}/${version}`, [SANDBOX_TYPE]);
    }
    return undefined;
  }

  private sandboxGroup(): { name: string; versions: unknown[]; preferredVersion: unknown } {
    const versions = [...this.sandboxVersions]
      .reverse()
      .map((version) => ({ groupVersion: `${SANDBOX_GROUP}/${version}`, version }));
    return { name: SANDBOX_GROUP, versions, preferredVersion: versions[0] };
  }

  private parsePath(pathname: string): ParsedPath | undefined {
    const parts = pathname.split("/").filter(Boolean);
    let types: readonly ResourceType[];
    let version: string;
    let rest: string[];
    if (parts[0] === "api" && parts[1] === "v1") {
      types = CORE_TYPES;
      version = "v1";
      rest = parts.slice(2);
    } else if (
      parts[0] === "apis" &&
      parts[1] === SANDBOX_GROUP &&
      this.sandboxCrdServed &&
      this.sandboxVersions.includes(parts[2] ?? "")
    ) {
      types = [SANDBOX_TYPE];
      version = parts[2] as string;
      rest = parts.slice(3);
    } else {
      return undefined;
    }
    let namespace: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const resource = types.find((type) => type.plural === rest[0]);
    if (!resource || rest.length > 3) return undefined;
    if (namespace !== undefined && !resource.namespaced) return undefined;
    if (namespace === undefined && resource.namespaced && rest.length > 1) return undefined;
    return { resource, version, namespace, name: rest[1], subresource: rest[2] };
  }
}

function verbOf(method: string, name: string | undefined, isWatch: boolean): string {
  switch (method) {
    case "GET":
      return name ? "get" : isWatch ? "watch" : "list";
    case "POST":
      return name ? "unsupported" : "create";
    case "PUT":
      return name ? "update" : "unsupported";
    case "PATCH":
      return name ? "patch" : "unsupported";
    case "DELETE":
      return name ? "delete" : "unsupported";
    default:
      return "unsupported";
  }
}

function selectorOf(url: URL): ObjectPredicate {
  const labels = parseLabelSelector(url.searchParams.get("labelSelector"));
  const fields = parseFieldSelector(url.searchParams.get("fieldSelector"));
  return (object) => labels(object) && fields(object);
}

function resourceList(groupVersion: string, types: readonly ResourceType[]): unknown {
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion,
    resources: types.flatMap((type) => [
      {
        name: type.plural,
        singularName: type.kind.toLowerCase(),
        namespaced: type.namespaced,
        kind: type.kind,
        verbs: ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        ...(type.shortNames ? { shortNames: type.shortNames } : {}),
      },
      ...(type.statusSubresource
        ? [
            {
              name: `${type.plural}/status`,
              singularName: "",
              namespaced: type.namespaced,
              kind: type.kind,
              verbs: ["get", "patch", "update"],
            },
          ]
        : []),
    ]),
  };
}

/** The object without its resourceVersion, to tell a no-op write (which the apiserver does not bump). */
function strip(object: KubeObject): KubeObject {
  const copy = structuredClone(object);
  if (copy.metadata) delete copy.metadata.resourceVersion;
  return copy;
}

function parseJson(body: string): KubeObject {
  try {
    const parsed = JSON.parse(body) as unknown;
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
      throw new Error("not an object");
    return parsed as KubeObject;
  } catch (error) {
    throw badRequest(`the body of the request could not be decoded: ${(error as Error).message}`);
  }
}

function readBody(request: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.once("end", () => resolve(Buffer.concat(chunks).toString()));
    request.once("error", reject);
  });
}

function sendJson(response: http.ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  response.end(text);
}
