import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type PlatformEvent, SandboxPhase } from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startVmGateway,
} from "@openshell/testing/gateway-harness";
import { pidsOf, waitFor } from "@openshell/testing/process";
import { execOutput, waitForPhase } from "@openshell/testing/sandbox-harness";
import { afterEach, describe, expect, it } from "vitest";

const READY_TIMEOUT_MS = 240_000;
const qemuPidsUnder = (dir: string) => pidsOf(/^qemu-system/, dir);

/** What each sandbox generates after it got its identity: none of it may be shared. */
const FINGERPRINT_SCRIPT = [
  "echo ca=$(sha256sum < /etc/openshell-tls/openshell-ca.pem | cut -c1-32)",
  // The CA's key pair comes from the supervisor's OpenSSL, whose Node started in the template.
  `echo ca_key=$(node -e 'const c = require("crypto"); const pem = require("fs").readFileSync("/etc/openshell-tls/openshell-ca.pem"); process.stdout.write(c.createHash("sha256").update(new c.X509Certificate(pem).publicKey.export({ type: "spki", format: "der" })).digest("hex"))')`,
  "echo urandom=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n')",
  `echo node=$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("hex"))')`,
  "echo boot_id=$(tr -d - < /proc/sys/kernel/random/boot_id)",
].join("; ");

/**
 * New VM sandboxes from a template snapshot, through a real gateway, driver and QEMU (TCG): the
 * first create boots cold and makes the template; later creates restore it and get their own
 * identity; nothing random is shared between them.
 */
describe("VM sandboxes from a template snapshot", () => {
  const dirs: string[] = [];
  const gateways: RunningGateway[] = [];

  afterEach(async (context) => {
    if (context.task.result?.state === "fail")
      for (const gw of gateways) process.stderr.write(`gateway log:\n${gw.output().slice(-8000)}\n`);
    for (const gw of gateways.splice(0)) await gw.stop("SIGTERM");
    for (const dir of dirs.splice(0)) {
      for (const pid of qemuPidsUnder(dir)) process.kill(pid, "SIGKILL");
      removeStateDir(dir);
    }
  });

  const sh = async (gw: RunningGateway, sandboxId: string, script: string) => {
    const result = await execOutput(gw.grpc.execSandbox({ sandboxId, command: ["sh", "-c", script] }));
    expect(result, script).toMatchObject({ exitCode: 0 });
    return result.stdout.trim();
  };

  /** Creates `name`, waits for READY and returns its id and its `Booting` event's message. */
  async function createReady(gw: RunningGateway, name: string): Promise<{ id: string; booting: string }> {
    const id = (await gw.grpc.createSandbox({ name, spec: {} })).sandbox?.id as string;
    await waitForPhase(gw, name, SandboxPhase.READY, READY_TIMEOUT_MS);
    const events: PlatformEvent[] = [];
    const abort = new AbortController();
    const stream = gw.grpc.watchSandbox({ id, followEvents: true, eventTail: 100 }, { signal: abort.signal });
    const reading = (async () => {
      for await (const event of stream) if (event.payload.case === "event") events.push(event.payload.value);
    })().catch(() => undefined);
    await waitFor(
      () => events.some((e) => e.reason === "Booting"),
      10_000,
      () => `no Booting event: ${events.map((e) => e.reason).join(", ")}`,
    );
    abort.abort();
    await reading;
    return { id, booting: events.find((e) => e.reason === "Booting")?.message ?? "" };
  }

  it("the first create boots cold and makes the template; the next ones restore it with their own identity, keys and randomness", async () => {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const gw = await startVmGateway({ stateDir, env: { OPENSHELL_VM_TEMPLATES: "on" } });
    gateways.push(gw);

    const first = await createReady(gw, "cold-one");
    expect(first.booting).toContain("cold boot: no template for this runtime and size yet");
    const templates = join(stateDir, "drv", "templates");
    await waitFor(
      () =>
        existsSync(templates) &&
        readdirSync(templates).some((dir) => existsSync(join(templates, dir, "snapshot.json"))),
      READY_TIMEOUT_MS,
      () => "no template was made",
    );
    const [templateDir] = readdirSync(templates);
    const template = join(templates, templateDir as string);
    expect(JSON.parse(readFileSync(join(template, "snapshot.json"), "utf8"))).toMatchObject({
      cause: "template",
    });
    // The template guest stopped before its environment, its supervisor started but idle.
    const templateConsole = readFileSync(join(template, "console.log"), "utf8");
    expect(templateConsole).toContain("OPENSHELL-VM-INIT template waiting");
    expect(templateConsole).not.toContain("OPENSHELL-VM-INIT ready");
    expect(templateConsole).not.toContain("NET:");
    expect(templateConsole).not.toContain("sandbox CA created");
    // What every sandbox needs was made in the template: the network namespace, and a warm-up run.
    expect(templateConsole).toContain("network isolation: namespace openshell-sandbox");
    expect(templateConsole).toContain("template warm-up done");
    const templateSupervisor = /template waiting uptime=\S+ supervisor=(\d+)/.exec(templateConsole)?.[1];
    expect(templateSupervisor, templateConsole.slice(-2000)).toBeDefined();

    const names = ["from-template-a", "from-template-b", "from-template-c"];
    const made: { id: string; booting: string }[] = [];
    for (const name of names) made.push(await createReady(gw, name));
    const facts: Record<string, string>[] = [];
    for (const [i, sandbox] of made.entries()) {
      expect(sandbox.booting).toContain("restored from its template snapshot");
      const consoleText = readFileSync(join(stateDir, "drv", "sandboxes", sandbox.id, "console.log"), "utf8");
      expect(consoleText).toContain("OPENSHELL-VM-INIT identity received");
      expect(consoleText).not.toContain("warning: cannot reseed");
      // The template's namespace serves this sandbox: its children reach the proxy through it (the
      // default policy denies every host: the proxy's 403).
      expect(consoleText).toContain("(made in the VM template)");
      expect(
        await sh(gw, sandbox.id, "curl -s -o /dev/null -w '%{http_code}' http://denied.example/ || true"),
      ).toBe("403");
      // Its supervisor is the template's, which went on with this sandbox's identity.
      expect(
        await sh(
          gw,
          sandbox.id,
          'for d in /proc/[0-9]*; do [ "$(cat $d/comm 2>/dev/null)" != tini ] || echo "$d"; done',
        ),
      ).toBe(`/proc/${templateSupervisor}`);
      // Each has its own disk on top of the template's.
      await sh(gw, sandbox.id, `echo ${names[i]} > /sandbox/mine.txt`);
      facts.push(
        Object.fromEntries(
          (await sh(gw, sandbox.id, FINGERPRINT_SCRIPT)).split("\n").map((line) => {
            const [key, value] = line.split("=");
            return [key as string, value as string];
          }),
        ),
      );
    }
    for (const [i, sandbox] of made.entries())
      expect(await sh(gw, sandbox.id, "cat /sandbox/mine.txt")).toBe(names[i]);
    for (const key of ["ca", "ca_key", "urandom", "node"]) {
      const values = facts.map((f) => f[key]);
      expect(
        values.every((v) => v && v.length >= 32),
        `${key}: ${values.join(", ")}`,
      ).toBe(true);
      expect(new Set(values).size, `${key} shared between sandboxes: ${values.join(", ")}`).toBe(
        values.length,
      );
    }
    // The kernel makes its boot id at the first read, which no template step does: each sandbox
    // has its own (architecture/vm-snapshots.md).
    expect(new Set(facts.map((f) => f.boot_id)).size).toBe(facts.length);
  }, 900_000);

  it("a gateway stopped while a template is being made ends the template VM and stops without waiting for it", async () => {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const gw = await startVmGateway({ stateDir, env: { OPENSHELL_VM_TEMPLATES: "on" } });
    gateways.push(gw);
    await gw.grpc.createSandbox({ name: "first", spec: {} });
    const templateQemu = () => qemuPidsUnder(join(stateDir, "drv", "templates"));
    await waitFor(
      () => templateQemu().length === 1,
      READY_TIMEOUT_MS, // made once the first sandbox is up
      () => "no template VM started",
    );
    gateways.splice(gateways.indexOf(gw), 1);
    await gw.stop("SIGTERM");
    expect(qemuPidsUnder(stateDir)).toEqual([]);
    // The driver ended its template VM and gave up the build; before, it waited for the boot
    // deadline until the gateway killed it (30 s later) and never logged this.
    expect(gw.output()).toContain("making a VM template failed");
  }, 300_000);

  it("with templates off (OPENSHELL_VM_TEMPLATES=off) every create boots cold and no template is made", async () => {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const gw = await startVmGateway({ stateDir, env: { OPENSHELL_VM_TEMPLATES: "off" } });
    gateways.push(gw);
    const { booting } = await createReady(gw, "cold-only");
    expect(booting).toContain("cold boot: templates are off");
    expect(existsSync(join(stateDir, "drv", "templates"))).toBe(false);
  }, 600_000);
});
