/**
 * A FAKE kubelet for tests (no cluster can be had on these machines): one node, `fake-node`, that
 * realises each Pod in the fake API server as containers on a private Docker daemon
 * (docker-harness.ts), and reports back as the kubelet would, so a real supervisor runs in a
 * sandbox pod, dials the gateway and serves SSH.
 *
 * - The Node object (allocatable cpu/memory/pods, Ready) is registered at start.
 * - A new pod is bound to the node (`spec.nodeName`, event `Scheduled`), then: volumes (`emptyDir`
 *   as a Docker volume removed with the pod; `persistentVolumeClaim` as the named Docker volume
 *   `fake-pvc-<claim uid>` that outlives the pod and goes when its PVC is deleted; `secret` as a
 *   host directory of files with `defaultMode`; `hostPath` as a bind mount); images (present in the
 *   daemon, else `ErrImagePull` then `ImagePullBackOff` with `Failed`/`BackOff` events, retried:
 *   there is no registry to pull from unless `allowPull`); init containers one at a time, each to
 *   completion (a failure is retried with `BackOff` as `restartPolicy: Always` pods are); then the
 *   main containers, sharing the first one's network namespace as a pod's containers do.
 * - Containers get the pod's `command` (Docker entrypoint) and `args`, `env` (`value`,
 *   `secretKeyRef`, `fieldRef` of name/namespace/uid/nodeName/podIP), `workingDir`, `volumeMounts`,
 *   `securityContext` (capabilities add/drop, runAsUser/runAsGroup, privileged,
 *   readOnlyRootFilesystem, allowPrivilegeEscalation), memory/cpu limits, `hostAliases`, and
 *   `host.openshell.internal` as the pod network's gateway (the host) unless the pod names it. As
 *   Kubernetes runs pods without seccomp unless asked, containers run `seccomp=unconfined` unless
 *   the pod asks for `RuntimeDefault`. Volumes start empty (`volume-nocopy`) and memory limits come
 *   without swap, as on a node.
 * - Pod status: phase Pending/Running/Succeeded/Failed, conditions, podIP, init and container
 *   statuses (waiting reasons, running, terminated with exit code and `OOMKilled`/`Completed`/
 *   `Error`, restartCount); a main container that exits is restarted with `BackOff` under
 *   `restartPolicy: Always` (only its newest dead container is kept, as the kubelet's GC does). Events as the kubelet's: Scheduled, Pulling, Pulled, Failed, BackOff,
 *   Created, Started, Killing.
 * - A deleted pod (the fake API server deletes at once, without grace) has its containers removed
 *   (`Killing`) and its emptyDir volumes and secret directories deleted.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type DockerResult, runDocker } from "../docker-harness.js";
import type { FakeKubernetesApiServer, KubeObject, StoreChange } from "./fake-api-server.js";

export const FAKE_NODE_NAME = "fake-node";
const POD_UID_LABEL = "fake-kubelet.openshell.test/pod-uid";
const PVC_LABEL = "fake-kube.openshell.test/pvc";

export interface NodeAgentOptions {
  /** The private daemon's DOCKER_HOST (`unix://…/docker.sock`). */
  dockerHost: string;
  /** Host directory for secret volumes (one subdirectory per pod). */
  stateDir: string;
  /** Docker network the pods join (created if missing; default `fake-kube-pods`). */
  network?: string;
  /** Try `docker pull` for a missing image (default false: these machines have no registry). */
  allowPull?: boolean;
  /** Delay before a failed pull or a crashed container is retried (default 2 s). */
  backoffMs?: number;
}

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: { name: string; value?: string; valueFrom?: EnvSource }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  securityContext?: SecurityContext;
  resources?: { limits?: Record<string, string> };
}

interface EnvSource {
  secretKeyRef?: { name: string; key: string; optional?: boolean };
  fieldRef?: { fieldPath: string };
}

interface SecurityContext {
  capabilities?: { add?: string[]; drop?: string[] };
  runAsUser?: number;
  runAsGroup?: number;
  privileged?: boolean;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  seccompProfile?: { type?: string };
}

interface Volume {
  name: string;
  emptyDir?: unknown;
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
  secret?: {
    secretName: string;
    defaultMode?: number;
    items?: { key: string; path: string; mode?: number }[];
  };
  hostPath?: { path: string; type?: string };
}

interface PodSpec {
  nodeName?: string;
  restartPolicy?: string;
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
  hostAliases?: { ip: string; hostnames: string[] }[];
  securityContext?: SecurityContext;
}

interface Terminated {
  exitCode: number;
  reason: string;
  startedAt?: string;
  finishedAt?: string;
  containerID?: string;
}

type ContainerState =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | { terminated: Terminated };

interface ContainerStatus {
  name: string;
  image: string;
  imageID: string;
  containerID?: string;
  ready: boolean;
  started: boolean;
  restartCount: number;
  state: ContainerState;
  lastState: ContainerState | Record<string, never>;
}

/** A volume as Docker mounts it. */
type Mountable = { kind: "volume"; source: string } | { kind: "bind"; source: string };

class PodCancelled extends Error {}

interface PodWork {
  cancelled: boolean;
  uid: string;
  namespace: string;
  name: string;
  volumes: Map<string, Mountable>;
  ownedDockerVolumes: string[];
  hostDirs: string[];
  init: ContainerStatus[];
  main: ContainerStatus[];
  podIP?: string;
  startTime: string;
  /** Per container name, its newest exited container (the kubelet keeps one for `logs --previous`). */
  deadContainers: Map<string, string>;
}

export class FakeNodeAgent {
  private readonly pods = new Map<string, PodWork>();
  /** Teardowns and PVC volume removals still running, awaited by stop(). */
  private readonly cleanups = new Set<Promise<void>>();
  private readonly eventNames = new Map<string, string>();
  private unsubscribe: (() => void) | undefined;
  private readonly network: string;
  private readonly backoffMs: number;
  private gatewayIp = "";

  constructor(
    private readonly api: FakeKubernetesApiServer,
    private readonly options: NodeAgentOptions,
  ) {
    this.network = options.network ?? "fake-kube-pods";
    this.backoffMs = options.backoffMs ?? 2000;
  }

  /** The pod network's gateway: the host as pods reach it (`host.openshell.internal`). */
  get hostGatewayIp(): string {
    return this.gatewayIp;
  }

  async start(): Promise<void> {
    const exists = await this.docker(["network", "inspect", this.network], true);
    if (exists.code !== 0) await this.docker(["network", "create", this.network]);
    const gateway = await this.docker([
      "network",
      "inspect",
      "-f",
      "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
      this.network,
    ]);
    this.gatewayIp = gateway.stdout.trim();
    const nodes = this.api.type("nodes");
    if (!this.api.get(nodes, undefined, FAKE_NODE_NAME)) {
      const node = this.api.create(nodes, {
        metadata: { name: FAKE_NODE_NAME, labels: { "kubernetes.io/hostname": FAKE_NODE_NAME } },
        spec: {},
      });
      this.api.update(
        nodes,
        {
          ...node,
          status: {
            capacity: { cpu: "2", memory: "4Gi", pods: "110" },
            allocatable: { cpu: "2", memory: "4Gi", pods: "110" },
            conditions: [
              {
                type: "Ready",
                status: "True",
                reason: "KubeletReady",
                message: "fake kubelet is posting ready status",
              },
            ],
            nodeInfo: {
              kubeletVersion: "v1.33.0-fake",
              containerRuntimeVersion: "docker://fake",
              operatingSystem: "linux",
              architecture: "amd64",
            },
          },
        },
        undefined,
        "status",
      );
    }
    await this.collectOrphans();
    this.unsubscribe = this.api.subscribe((change) => this.onChange(change));
    for (const pod of this.api.list(this.api.type("pods"), undefined)) this.admit(pod);
  }

  /**
   * As the kubelet's garbage collection: containers and emptyDir volumes of pods the API server does
   * not have, and PVC volumes of claims it does not have (left by an earlier run on the same data
   * root), are removed.
   */
  private async collectOrphans(): Promise<void> {
    const pods = new Set(
      this.api.list(this.api.type("pods"), undefined).map((pod) => String(pod.metadata?.uid)),
    );
    const claims = new Set(
      this.api
        .list(this.api.type("persistentvolumeclaims"), undefined)
        .map((claim) => String(claim.metadata?.uid)),
    );
    const containers = await this.docker([
      "ps",
      "-a",
      "--filter",
      `label=${POD_UID_LABEL}`,
      "--format",
      `{{.ID}} {{.Label "${POD_UID_LABEL}"}}`,
    ]);
    const orphans = containers.stdout
      .split("\n")
      .map((line) => line.split(" "))
      .filter(([id, uid]) => id && !pods.has(String(uid)))
      .map(([id]) => String(id));
    if (orphans.length > 0) await this.docker(["rm", "-f", ...orphans], true);
    const volumes = await this.docker(["volume", "ls", "-q", "--filter", `label=${POD_UID_LABEL}`]);
    for (const name of volumes.stdout.split("\n").filter(Boolean)) {
      if (![...pods].some((uid) => name.includes(uid))) await this.docker(["volume", "rm", "-f", name], true);
    }
    const claimVolumes = await this.docker(["volume", "ls", "-q", "--filter", `label=${PVC_LABEL}`]);
    for (const name of claimVolumes.stdout.split("\n").filter(Boolean)) {
      if (!claims.has(name.replace(/^fake-pvc-/, ""))) await this.docker(["volume", "rm", "-f", name], true);
    }
  }

  /** Stops watching and removes every container it started (PVC volumes stay, as on a node). */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const work of this.pods.values()) work.cancelled = true;
    for (const work of this.pods.values()) this.track(this.teardown(work, false));
    this.pods.clear();
    while (this.cleanups.size > 0) await Promise.all([...this.cleanups]);
  }

  /** The Docker volume that holds a PVC's data (for tests that look inside a workspace). */
  claimVolumeName(claimUid: string): string {
    return `fake-pvc-${claimUid}`;
  }

  private onChange(change: StoreChange): void {
    const plural = change.resource.plural;
    if (plural === "pods") {
      const uid = String(change.object.metadata?.uid);
      if (change.type === "DELETED") {
        const work = this.pods.get(uid);
        if (work) {
          work.cancelled = true;
          this.pods.delete(uid);
          this.track(this.teardown(work, true));
        }
      } else if (change.type === "ADDED") {
        this.admit(change.object);
      }
    } else if (plural === "persistentvolumeclaims" && change.type === "DELETED") {
      this.track(this.removeClaimVolume(this.claimVolumeName(String(change.object.metadata?.uid))));
    }
  }

  private admit(pod: KubeObject): void {
    const uid = String(pod.metadata?.uid);
    if (this.pods.has(uid)) return;
    const work: PodWork = {
      cancelled: false,
      uid,
      namespace: String(pod.metadata?.namespace),
      name: String(pod.metadata?.name),
      volumes: new Map(),
      ownedDockerVolumes: [],
      hostDirs: [],
      init: [],
      main: [],
      startTime: now(),
      deadContainers: new Map(),
    };
    this.pods.set(uid, work);
    // Not inside the API server's change dispatch: start on the next turn.
    setImmediate(() => {
      this.run(work).catch((error: unknown) => {
        if (error instanceof PodCancelled || work.cancelled) return;
        this.event(work, "Warning", "FailedSync", `fake kubelet: ${(error as Error).message}`);
      });
    });
  }

  private async run(work: PodWork): Promise<void> {
    let pod = this.currentPod(work);
    const spec = pod.spec as unknown as PodSpec;
    if (!spec.nodeName) {
      pod = this.api.update(
        this.api.type("pods"),
        { ...pod, spec: { ...spec, nodeName: FAKE_NODE_NAME } },
        work.namespace,
      );
      this.event(
        work,
        "Normal",
        "Scheduled",
        `Successfully assigned ${work.namespace}/${work.name} to ${FAKE_NODE_NAME}`,
        "default-scheduler",
      );
    }
    const initContainers = spec.initContainers ?? [];
    work.init = initContainers.map((container) => waitingStatus(container, "PodInitializing"));
    work.main = spec.containers.map((container) => waitingStatus(container, "PodInitializing"));
    this.writeStatus(work, "Pending");
    await this.prepareVolumes(work, spec);
    const all = [...initContainers, ...spec.containers];
    for (const image of new Set(all.map((container) => container.image)))
      await this.ensureImage(work, image, all);
    for (const [index, container] of initContainers.entries()) {
      for (;;) {
        const status = work.init[index] as ContainerStatus;
        const result = await this.runToCompletion(work, spec, container, status);
        this.check(work);
        if (result.exitCode === 0) break;
        if (spec.restartPolicy === "Never") {
          this.writeStatus(work, "Failed");
          return;
        }
        await this.backOff(work, container, status, status.state, "Pending");
      }
    }
    for (const status of work.main) status.state = { waiting: { reason: "ContainerCreating" } };
    this.writeStatus(work, "Pending");
    let first: string | undefined;
    for (const [index, container] of spec.containers.entries()) {
      const id = await this.startContainer(work, spec, container, work.main[index] as ContainerStatus, first);
      first ??= id;
    }
    this.writeStatus(work, "Running");
    await Promise.all(
      spec.containers.map((container, index) => this.supervise(work, spec, container, index)),
    );
  }

  /** A failed container waits in CrashLoopBackOff (status, pod phase, kubelet event) before its restart. */
  private async backOff(
    work: PodWork,
    container: Container,
    status: ContainerStatus,
    lastState: ContainerState,
    phase: "Pending" | "Running",
  ): Promise<void> {
    status.restartCount += 1;
    status.lastState = lastState;
    status.state = {
      waiting: {
        reason: "CrashLoopBackOff",
        message: `back-off restarting failed container ${container.name}`,
      },
    };
    this.writeStatus(work, phase);
    this.event(
      work,
      "Warning",
      "BackOff",
      `Back-off restarting failed container ${container.name} in pod ${work.name}_${work.namespace}(${work.uid})`,
      "kubelet",
      container.name,
    );
    await this.sleep(work, this.backoffMs);
  }

  /** Waits for a main container to exit; restarts it as `restartPolicy` says. */
  private async supervise(work: PodWork, spec: PodSpec, container: Container, index: number): Promise<void> {
    for (;;) {
      const status = work.main[index] as ContainerStatus;
      const terminated = await this.waitFor(work, status);
      this.check(work);
      status.ready = false;
      status.started = false;
      status.state = { terminated };
      const policy = spec.restartPolicy ?? "Always";
      const restart = policy === "Always" || (policy === "OnFailure" && terminated.exitCode !== 0);
      if (!restart) {
        const done = work.main.every((entry) => "terminated" in entry.state);
        if (done) {
          const failed = work.main.some(
            (entry) => "terminated" in entry.state && entry.state.terminated.exitCode !== 0,
          );
          this.writeStatus(work, failed ? "Failed" : "Succeeded");
        } else {
          this.writeStatus(work, "Running");
        }
        return;
      }
      await this.backOff(work, container, status, { terminated }, "Running");
      const dead = status.containerID?.replace("docker://", "");
      const others = work.main.find((entry, other) => other !== index && entry.containerID);
      await this.startContainer(work, spec, container, status, others?.containerID?.replace("docker://", ""));
      // As the kubelet's container GC (MaxPerPodContainer 1): a crash loop keeps only the newest
      // dead container, not one per restart.
      const older = work.deadContainers.get(container.name);
      if (older) await this.docker(["rm", "-f", older], true);
      if (dead) work.deadContainers.set(container.name, dead);
      this.writeStatus(work, "Running");
    }
  }

  private async prepareVolumes(work: PodWork, spec: PodSpec): Promise<void> {
    for (const volume of spec.volumes ?? []) {
      if (volume.emptyDir !== undefined) {
        const name = `fake-emptydir-${work.uid}-${volume.name}`;
        await this.docker(["volume", "create", "--label", `${POD_UID_LABEL}=${work.uid}`, name]);
        await this.forgetIfCancelled(work, ["volume", "rm", "-f", name]);
        work.ownedDockerVolumes.push(name);
        work.volumes.set(volume.name, { kind: "volume", source: name });
      } else if (volume.persistentVolumeClaim) {
        const claimName = volume.persistentVolumeClaim.claimName;
        for (;;) {
          const claim = this.api.get(this.api.type("persistentvolumeclaims"), work.namespace, claimName);
          if (claim) {
            const name = this.claimVolumeName(String(claim.metadata?.uid));
            await this.docker(["volume", "create", "--label", `${PVC_LABEL}=${claimName}`, name]);
            work.volumes.set(volume.name, { kind: "volume", source: name });
            break;
          }
          this.event(
            work,
            "Warning",
            "FailedScheduling",
            `persistentvolumeclaim "${claimName}" not found`,
            "default-scheduler",
          );
          await this.sleep(work, this.backoffMs);
        }
      } else if (volume.secret) {
        const dir = join(this.options.stateDir, "pods", work.uid, "secrets", volume.name);
        for (;;) {
          const secret = this.api.get(this.api.type("secrets"), work.namespace, volume.secret.secretName);
          if (secret) {
            mkdirSync(dir, { recursive: true, mode: 0o755 });
            const data = (secret.data ?? {}) as Record<string, string>;
            const items =
              volume.secret.items ?? Object.keys(data).map((key) => ({ key, path: key, mode: undefined }));
            for (const item of items) {
              writeFileSync(join(dir, item.path), Buffer.from(data[item.key] ?? "", "base64"), {
                mode: item.mode ?? volume.secret.defaultMode ?? 0o644,
              });
            }
            work.hostDirs.push(join(this.options.stateDir, "pods", work.uid));
            work.volumes.set(volume.name, { kind: "bind", source: dir });
            break;
          }
          this.event(
            work,
            "Warning",
            "FailedMount",
            `MountVolume.SetUp failed for volume "${volume.name}" : secret "${volume.secret.secretName}" not found`,
          );
          await this.sleep(work, this.backoffMs);
        }
      } else if (volume.hostPath) {
        if (volume.hostPath.type === "DirectoryOrCreate")
          mkdirSync(volume.hostPath.path, { recursive: true });
        work.volumes.set(volume.name, { kind: "bind", source: volume.hostPath.path });
      } else {
        this.event(
          work,
          "Warning",
          "FailedMount",
          `fake kubelet: volume "${volume.name}" has a type it does not support`,
        );
      }
      this.check(work);
    }
  }

  private async ensureImage(work: PodWork, image: string, containers: Container[]): Promise<void> {
    for (;;) {
      const present = await this.docker(["image", "inspect", image], true);
      this.check(work);
      if (present.code === 0) {
        this.event(work, "Normal", "Pulled", `Container image "${image}" already present on machine`);
        return;
      }
      this.event(work, "Normal", "Pulling", `Pulling image "${image}"`);
      let failure = `failed to pull and unpack image "${image}": not present on the fake node and pulling is off`;
      if (this.options.allowPull) {
        const pulled = await this.docker(["pull", image], true);
        if (pulled.code === 0) {
          this.event(work, "Normal", "Pulled", `Successfully pulled image "${image}"`);
          return;
        }
        failure = pulled.stderr.trim();
      }
      this.check(work);
      this.event(work, "Warning", "Failed", `Failed to pull image "${image}": ${failure}`);
      this.event(work, "Warning", "Failed", "Error: ErrImagePull");
      this.setWaiting(
        work,
        containers,
        image,
        "ErrImagePull",
        `rpc error: code = NotFound desc = ${failure}`,
      );
      await this.sleep(work, Math.min(500, this.backoffMs));
      this.event(work, "Normal", "BackOff", `Back-off pulling image "${image}"`);
      this.event(work, "Warning", "Failed", "Error: ImagePullBackOff");
      this.setWaiting(work, containers, image, "ImagePullBackOff", `Back-off pulling image "${image}"`);
      await this.sleep(work, this.backoffMs);
    }
  }

  private setWaiting(
    work: PodWork,
    containers: Container[],
    image: string,
    reason: string,
    message: string,
  ): void {
    for (const status of [...work.init, ...work.main]) {
      const container = containers.find((entry) => entry.name === status.name);
      if (container?.image === image) status.state = { waiting: { reason, message } };
    }
    this.writeStatus(work, "Pending");
  }

  private async runToCompletion(
    work: PodWork,
    spec: PodSpec,
    container: Container,
    status: ContainerStatus,
  ): Promise<Terminated> {
    await this.startContainer(work, spec, container, status, undefined);
    this.writeStatus(work, "Pending");
    const terminated = await this.waitFor(work, status);
    status.state = { terminated };
    status.ready = terminated.exitCode === 0;
    this.writeStatus(work, "Pending");
    return terminated;
  }

  private async startContainer(
    work: PodWork,
    spec: PodSpec,
    container: Container,
    status: ContainerStatus,
    shareNetworkWith: string | undefined,
  ): Promise<string> {
    const dockerName = `k8s_${container.name}_${work.name}_${work.namespace}_${work.uid.slice(0, 8)}_${status.restartCount}`;
    await this.docker(["rm", "-f", dockerName], true);
    const args = ["create", "--name", dockerName, "--label", `${POD_UID_LABEL}=${work.uid}`];
    if (shareNetworkWith) args.push("--network", `container:${shareNetworkWith}`);
    else {
      args.push("--network", this.network, "--hostname", work.name);
      const named = new Set((spec.hostAliases ?? []).flatMap((alias) => alias.hostnames));
      for (const alias of spec.hostAliases ?? [])
        for (const host of alias.hostnames) args.push("--add-host", `${host}:${alias.ip}`);
      if (!named.has("host.openshell.internal"))
        args.push("--add-host", `host.openshell.internal:${this.gatewayIp}`);
    }
    const security = { ...(spec.securityContext ?? {}), ...(container.securityContext ?? {}) };
    for (const cap of security.capabilities?.add ?? []) args.push("--cap-add", cap.replace(/^CAP_/, ""));
    for (const cap of security.capabilities?.drop ?? []) args.push("--cap-drop", cap.replace(/^CAP_/, ""));
    if (security.runAsUser !== undefined) {
      args.push(
        "--user",
        security.runAsGroup !== undefined
          ? `${security.runAsUser}:${security.runAsGroup}`
          : String(security.runAsUser),
      );
    }
    if (security.privileged) args.push("--privileged");
    if (security.readOnlyRootFilesystem) args.push("--read-only");
    if (security.allowPrivilegeEscalation === false) args.push("--security-opt", "no-new-privileges");
    if (security.seccompProfile?.type !== "RuntimeDefault") args.push("--security-opt", "seccomp=unconfined");
    const memory = container.resources?.limits?.memory;
    // No swap, as on a Kubernetes node: over the limit is an OOM kill.
    if (memory)
      args.push("--memory", String(parseQuantity(memory)), "--memory-swap", String(parseQuantity(memory)));
    const cpu = container.resources?.limits?.cpu;
    if (cpu) args.push("--cpus", String(parseQuantity(cpu)));
    if (container.workingDir) args.push("--workdir", container.workingDir);
    for (const entry of container.env ?? [])
      args.push("--env", `${entry.name}=${this.envValue(work, entry)}`);
    for (const mount of container.volumeMounts ?? []) {
      const source = work.volumes.get(mount.name);
      if (!source)
        throw new Error(
          `container ${container.name} mounts volume "${mount.name}" that the pod does not declare`,
        );
      const readOnly = mount.readOnly ? ",readonly" : "";
      if (source.kind === "volume") {
        const sub = mount.subPath ? `,volume-subpath=${mount.subPath}` : "";
        // volume-nocopy: a PVC or emptyDir starts empty; Docker would otherwise copy the image's
        // files at the mount path into a fresh volume (and hide what workspace-init does).
        args.push(
          "--mount",
          `type=volume,src=${source.source},dst=${mount.mountPath},volume-nocopy${sub}${readOnly}`,
        );
      } else {
        const path = mount.subPath ? join(source.source, mount.subPath) : source.source;
        args.push("--mount", `type=bind,src=${path},dst=${mount.mountPath}${readOnly}`);
      }
    }
    const [entrypoint, ...commandRest] = container.command ?? [];
    if (entrypoint !== undefined) args.push("--entrypoint", entrypoint);
    args.push(container.image, ...commandRest, ...(container.args ?? []));
    const created = await this.docker(args, true);
    this.check(work);
    if (created.code !== 0) {
      status.state = { waiting: { reason: "CreateContainerError", message: created.stderr.trim() } };
      this.event(work, "Warning", "Failed", `Error: ${created.stderr.trim()}`, "kubelet", container.name);
      throw new Error(`cannot create container ${container.name}: ${created.stderr.trim()}`);
    }
    const id = created.stdout.trim();
    await this.forgetIfCancelled(work, ["rm", "-f", id]);
    this.event(work, "Normal", "Created", `Created container: ${container.name}`, "kubelet", container.name);
    const started = await this.docker(["start", id], true);
    await this.forgetIfCancelled(work, ["rm", "-f", id]);
    if (started.code !== 0) {
      status.state = { waiting: { reason: "RunContainerError", message: started.stderr.trim() } };
      this.event(
        work,
        "Warning",
        "Failed",
        `Error: failed to start container "${container.name}": ${started.stderr.trim()}`,
        "kubelet",
        container.name,
      );
    } else {
      this.event(work, "Normal", "Started", `Started container ${container.name}`, "kubelet", container.name);
    }
    const inspect = JSON.parse((await this.docker(["inspect", id])).stdout)[0] as {
      Image: string;
      State: { StartedAt: string };
      NetworkSettings: { Networks: Record<string, { IPAddress: string }> };
    };
    status.containerID = `docker://${id}`;
    status.imageID = inspect.Image;
    if (started.code === 0) {
      status.state = { running: { startedAt: inspect.State.StartedAt.replace(/\.\d+Z$/, "Z") } };
      status.started = true;
      status.ready = true;
    }
    if (!shareNetworkWith && work.podIP === undefined) {
      const address = inspect.NetworkSettings.Networks[this.network]?.IPAddress;
      if (address) work.podIP = address;
    }
    return id;
  }

  private async waitFor(work: PodWork, status: ContainerStatus): Promise<Terminated> {
    const id = String(status.containerID).replace("docker://", "");
    let state: Record<string, unknown> = {};
    for (;;) {
      // No timeout: a sandbox runs for as long as the test wants; removing the container ends it.
      await runDocker(["wait", id], { host: this.options.dockerHost, allowFailure: true });
      this.check(work);
      const inspected = await this.docker(["inspect", id], true);
      state = (JSON.parse(inspected.stdout || "[{}]")[0] as { State?: Record<string, unknown> }).State ?? {};
      if (state.Running !== true) break;
    }
    const exitCode = Number(state.ExitCode ?? 137);
    return {
      exitCode,
      reason: state.OOMKilled ? "OOMKilled" : exitCode === 0 ? "Completed" : "Error",
      startedAt: String(state.StartedAt ?? "").replace(/\.\d+Z$/, "Z"),
      finishedAt: String(state.FinishedAt ?? "").replace(/\.\d+Z$/, "Z"),
      containerID: status.containerID,
    };
  }

  private envValue(work: PodWork, entry: { name: string; value?: string; valueFrom?: EnvSource }): string {
    if (entry.value !== undefined) return entry.value;
    const secretRef = entry.valueFrom?.secretKeyRef;
    if (secretRef) {
      const secret = this.api.get(this.api.type("secrets"), work.namespace, secretRef.name);
      const data = (secret?.data ?? {}) as Record<string, string>;
      if (data[secretRef.key] === undefined && !secretRef.optional) {
        throw new Error(`secret "${secretRef.name}" has no key "${secretRef.key}" (env ${entry.name})`);
      }
      return Buffer.from(data[secretRef.key] ?? "", "base64").toString();
    }
    switch (entry.valueFrom?.fieldRef?.fieldPath) {
      case "metadata.name":
        return work.name;
      case "metadata.namespace":
        return work.namespace;
      case "metadata.uid":
        return work.uid;
      case "spec.nodeName":
        return FAKE_NODE_NAME;
      case "status.podIP":
        return work.podIP ?? "";
      default:
        return "";
    }
  }

  private writeStatus(work: PodWork, phase: string): void {
    if (work.cancelled) return;
    const pods = this.api.type("pods");
    const pod = this.api.get(pods, work.namespace, work.name);
    if (!pod || pod.metadata?.uid !== work.uid) return;
    const initialized = work.init.every(
      (status) => "terminated" in status.state && status.state.terminated.exitCode === 0,
    );
    const containersReady = work.main.length > 0 && work.main.every((status) => status.ready);
    const condition = (type: string, ok: boolean, reason?: string) => ({
      type,
      status: ok ? "True" : "False",
      lastProbeTime: null,
      lastTransitionTime: work.startTime,
      ...(ok || !reason ? {} : { reason }),
    });
    const status = {
      phase,
      conditions: [
        condition("PodScheduled", true),
        condition("Initialized", initialized, "ContainersNotInitialized"),
        condition("ContainersReady", containersReady, "ContainersNotReady"),
        condition("Ready", containersReady && phase === "Running", "ContainersNotReady"),
      ],
      hostIP: this.gatewayIp,
      ...(work.podIP ? { podIP: work.podIP, podIPs: [{ ip: work.podIP }] } : {}),
      startTime: work.startTime,
      ...(work.init.length > 0 ? { initContainerStatuses: structuredClone(work.init) } : {}),
      containerStatuses: structuredClone(work.main),
      qosClass: "BestEffort",
    };
    try {
      this.api.update(pods, { ...pod, status }, work.namespace, "status");
    } catch {
      // deleted meanwhile
    }
  }

  /** Posts a core/v1 Event as the kubelet does; a repeat of the same event bumps its count. */
  private event(
    work: PodWork,
    type: string,
    reason: string,
    message: string,
    component = "kubelet",
    container?: string,
  ): void {
    if (work.cancelled && reason !== "Killing") return;
    const events = this.api.type("events");
    const key = `${work.uid}|${type}|${reason}|${message}|${container ?? ""}`;
    const timestamp = now();
    const existingName = this.eventNames.get(key);
    const existing = existingName ? this.api.get(events, work.namespace, existingName) : undefined;
    try {
      if (existing) {
        this.api.update(
          events,
          { ...existing, count: Number(existing.count ?? 1) + 1, lastTimestamp: timestamp },
          work.namespace,
        );
        return;
      }
      const name = `${work.name}.${randomBytes(8).toString("hex")}`;
      this.eventNames.set(key, name);
      this.api.create(
        events,
        {
          metadata: { name },
          involvedObject: {
            kind: "Pod",
            namespace: work.namespace,
            name: work.name,
            uid: work.uid,
            apiVersion: "v1",
            ...(container ? { fieldPath: `spec.containers{${container}}` } : {}),
          },
          reason,
          message,
          source: { component, ...(component === "kubelet" ? { host: FAKE_NODE_NAME } : {}) },
          firstTimestamp: timestamp,
          lastTimestamp: timestamp,
          count: 1,
          type,
          reportingComponent: component,
          reportingInstance: component === "kubelet" ? FAKE_NODE_NAME : "",
        },
        work.namespace,
      );
    } catch {
      // the namespace is gone: nothing to report to
    }
  }

  private async teardown(work: PodWork, report: boolean): Promise<void> {
    const listed = await this.docker(["ps", "-aq", "--filter", `label=${POD_UID_LABEL}=${work.uid}`], true);
    const ids = listed.stdout.split("\n").filter(Boolean);
    if (report) {
      for (const status of work.main) {
        if ("running" in status.state) {
          this.event(
            { ...work, cancelled: false },
            "Normal",
            "Killing",
            `Stopping container ${status.name}`,
            "kubelet",
            status.name,
          );
        }
      }
    }
    if (ids.length > 0) await this.docker(["rm", "-f", ...ids], true);
    for (const volume of work.ownedDockerVolumes) await this.docker(["volume", "rm", "-f", volume], true);
    for (const dir of work.hostDirs) rmSync(dir, { recursive: true, force: true });
  }

  /** A deleted PVC's data goes too (a `Delete` reclaim policy); retried while a container still uses it. */
  private async removeClaimVolume(name: string): Promise<void> {
    for (let attempt = 0; attempt < 30; attempt += 1) {
      const removed = await this.docker(["volume", "rm", name], true);
      if (removed.code === 0 || /no such volume/i.test(removed.stderr)) return;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  private currentPod(work: PodWork): KubeObject {
    const pod = this.api.get(this.api.type("pods"), work.namespace, work.name);
    if (!pod || pod.metadata?.uid !== work.uid) throw new PodCancelled();
    return pod;
  }

  private track(cleanup: Promise<void>): void {
    const tracked = cleanup.catch(() => undefined).finally(() => this.cleanups.delete(tracked));
    this.cleanups.add(tracked);
  }

  /** A pod deleted while Docker was creating something for it: undo that (teardown already ran). */
  private async forgetIfCancelled(work: PodWork, undo: string[]): Promise<void> {
    if (!work.cancelled) return;
    await this.docker(undo, true);
    throw new PodCancelled();
  }

  private check(work: PodWork): void {
    if (work.cancelled) throw new PodCancelled();
  }

  private async sleep(work: PodWork, ms: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    this.check(work);
  }

  private docker(args: string[], allowFailure = false): Promise<DockerResult> {
    return runDocker(args, { host: this.options.dockerHost, allowFailure, timeoutMs: 120_000 });
  }
}

function waitingStatus(container: Container, reason: string): ContainerStatus {
  return {
    name: container.name,
    image: container.image,
    imageID: "",
    ready: false,
    started: false,
    restartCount: 0,
    state: { waiting: { reason } },
    lastState: {},
  };
}

/** A Kubernetes quantity as a number: `512Mi` → bytes, `500m` → 0.5, `2` → 2. */
function parseQuantity(quantity: string): number {
  const match = /^([0-9.]+)([a-zA-Z]*)$/.exec(quantity.trim());
  if (!match) throw new Error(`bad quantity ${quantity}`);
  const value = Number(match[1]);
  const units: Record<string, number> = {
    "": 1,
    m: 0.001,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
  };
  const unit = units[match[2] as string];
  if (unit === undefined) throw new Error(`bad quantity ${quantity}`);
  return Math.round(value * unit * 1000) / 1000;
}

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}
