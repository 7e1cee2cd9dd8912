import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { Logger } from "@openshell/core";
import { TOOL_PATH } from "./tool-path.js";

const execFileAsync = promisify(execFile);

/**
 * QEMU user networking maps 10.0.2.0/24 (but the guest's own address and the DNS forwarder) to the
 * host's loopback, and the VM guest's init closes it except the gateway's port (set `host_tcp` of
 * its table `inet openshell`, see packages/driver-vm/runtime/openshell-vm-init). A host service the
 * policy allowed (a private address, so only through `allowed_ips` or a literal-IP host) is opened
 * there for the proxy's own connection just before it dials. Elsewhere (no such table) nothing
 * happens.
 */
export class HostAliasOpener {
  private readonly opened = new Map<string, Promise<void>>();

  constructor(private readonly logger: Logger) {}

  open(address: string, port: number): Promise<void> {
    if (!/^10\.0\.2\.\d+$/.test(address)) return Promise.resolve();
    const key = `${address} . ${port}`;
    let opening = this.opened.get(key);
    if (!opening) {
      opening = execFileAsync("nft", ["add", "element", "inet", "openshell", "host_tcp", `{ ${key} }`], {
        env: { PATH: TOOL_PATH },
        timeout: 5000,
      }).then(
        () =>
          this.logger.info(
            { host_alias: address, port },
            "host service opened for the proxy in the guest's host firewall",
          ),
        (error: Error) =>
          this.logger.debug({ host_alias: address, port }, `host firewall not changed: ${error.message}`),
      );
      this.opened.set(key, opening);
    }
    return opening;
  }
}
