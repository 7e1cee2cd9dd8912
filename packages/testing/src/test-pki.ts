import { join } from "node:path";
import { generateGatewayPki, writeGatewayPki } from "@openshell/bootstrap";

export interface TestPki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate from a CA the gateway does not trust. */
  strangerCert: string;
  strangerKey: string;
}

/**
 * A throw-away PKI in `dir`, made by the generator `openshell gateway start` uses: a CA with a server
 * certificate (localhost, 127.0.0.1, host.openshell.internal, …) and a client certificate, plus a
 * client certificate from a second CA (in `dir/stranger`) that the gateway does not trust.
 */
export async function makeTestPki(dir: string): Promise<TestPki> {
  const [trusted, stranger] = await Promise.all([
    generateGatewayPki({ gatewayName: "test" }),
    generateGatewayPki({ gatewayName: "stranger" }),
  ]);
  const strangerDir = join(dir, "stranger");
  writeGatewayPki(dir, trusted);
  writeGatewayPki(strangerDir, stranger);
  return {
    ca: join(dir, "ca.crt"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
    clientCert: join(dir, "client.crt"),
    clientKey: join(dir, "client.key"),
    strangerCert: join(strangerDir, "client.crt"),
    strangerKey: join(strangerDir, "client.key"),
  };
}
