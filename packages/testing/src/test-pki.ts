import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

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

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: "pipe" });
}

function issue(dir: string, name: string, caName: string, subject: string, extensions: string): void {
  openssl([
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-subj",
    subject,
    "-keyout",
    join(dir, `${name}.key`),
    "-out",
    join(dir, `${name}.csr`),
  ]);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl([
    "x509",
    "-req",
    "-in",
    join(dir, `${name}.csr`),
    "-CA",
    join(dir, `${caName}.crt`),
    "-CAkey",
    join(dir, `${caName}.key`),
    "-CAcreateserial",
    "-days",
    "2",
    "-out",
    join(dir, `${name}.crt`),
    "-extfile",
    join(dir, `${name}.ext`),
  ]);
}

function makeCa(dir: string, name: string): void {
  openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-keyout",
    join(dir, `${name}.key`),
    "-out",
    join(dir, `${name}.crt`),
  ]);
}

/** A throwaway CA with a server certificate for 127.0.0.1 and client certificates (real openssl). */
export function makeTestPki(dir: string): TestPki {
  makeCa(dir, "ca");
  makeCa(dir, "stranger-ca");
  issue(
    dir,
    "server",
    "ca",
    "/CN=openshell-gateway",
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:host.openshell.internal\nextendedKeyUsage=serverAuth\n",
  );
  issue(dir, "client", "ca", "/CN=openshell-client", "extendedKeyUsage=clientAuth\n");
  issue(dir, "stranger", "stranger-ca", "/CN=stranger", "extendedKeyUsage=clientAuth\n");
  return {
    ca: join(dir, "ca.crt"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
    clientCert: join(dir, "client.crt"),
    clientKey: join(dir, "client.key"),
    strangerCert: join(dir, "stranger.crt"),
    strangerKey: join(dir, "stranger.key"),
  };
}
