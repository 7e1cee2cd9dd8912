import {
  createPrivateKey,
  KeyObject,
  X509Certificate as NodeX509Certificate,
  randomBytes,
  type webcrypto,
} from "node:crypto";
import { chmodSync, mkdirSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import { OpenShellError } from "@openshell/core";
import type { Extension, JsonGeneralName } from "@peculiar/x509";
import { writeFileAtomic } from "./atomic-file.js";

/** A gateway's private PKI; every field is PEM (keys are PKCS#8 "PRIVATE KEY"). */
export interface GatewayPki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export interface GatewayPkiOptions {
  gatewayName: string;
  /** Additional server names: DNS names or IP literals. */
  extraSans?: string[];
}

const PKI_FILES: Record<keyof GatewayPki, string> = {
  caCert: "ca.crt",
  caKey: "ca.key",
  serverCert: "server.crt",
  serverKey: "server.key",
  clientCert: "client.crt",
  clientKey: "client.key",
};

const PKI_FIELDS = Object.keys(PKI_FILES) as (keyof GatewayPki)[];

const CERT_PAIRS = [
  ["caCert", "caKey"],
  ["serverCert", "serverKey"],
  ["clientCert", "clientKey"],
] as const satisfies ReadonlyArray<readonly [keyof GatewayPki, keyof GatewayPki]>;

const DEFAULT_SERVER_SANS = ["localhost", "127.0.0.1", "::1", "host.openshell.internal", "openshell"];
const KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: "ECDSA", hash: "SHA-256" };
const VALIDITY_YEARS = 10;
const CLOCK_SKEW_MS = 60 * 60 * 1000;

type X509Module = typeof import("@peculiar/x509");

interface Issuer {
  name: string;
  keys: webcrypto.CryptoKeyPair;
}

/** Creates a fresh CA plus server and client certificates signed by it. */
export async function generateGatewayPki(options: GatewayPkiOptions): Promise<GatewayPki> {
  const x509 = await loadX509();
  const crypto = globalThis.crypto;
  const now = Date.now();
  const notBefore = new Date(now - CLOCK_SKEW_MS);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALIDITY_YEARS);
  const validity = { notBefore, notAfter, signingAlgorithm: SIGNING_ALGORITHM };

  const caName = `CN=openshell-${options.gatewayName} CA`;
  const caKeys = await generateKeyPair();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      ...validity,
      serialNumber: randomSerialNumber(),
      name: caName,
      keys: caKeys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );

  const issuer: Issuer = { name: caName, keys: caKeys };
  const serverSans = [...new Set([...DEFAULT_SERVER_SANS, ...(options.extraSans ?? [])])];
  const server = await issueLeaf(
    x509,
    issuer,
    "openshell-server",
    x509.ExtendedKeyUsage.serverAuth,
    validity,
    [new x509.SubjectAlternativeNameExtension(serverSans.map(toGeneralName))],
  );
  const client = await issueLeaf(
    x509,
    issuer,
    "openshell-client",
    x509.ExtendedKeyUsage.clientAuth,
    validity,
    [],
  );

  return {
    caCert: `${caCert.toString("pem")}\n`,
    caKey: exportPrivateKey(caKeys.privateKey),
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
  };
}

/**
 * Reads the six PKI files from `dir`. Returns undefined when none exist; throws
 * OpenShellError(config_invalid) when only some exist or one is unusable.
 */
export function loadGatewayPki(dir: string): GatewayPki | undefined {
  const found: Partial<GatewayPki> = {};
  const missing: string[] = [];
  for (const field of PKI_FIELDS) {
    const text = readIfExists(join(dir, PKI_FILES[field]));
    if (text === undefined) missing.push(PKI_FILES[field]);
    else found[field] = text;
  }
  if (missing.length === PKI_FIELDS.length) return undefined;
  if (missing.length > 0) throw invalidPki(dir, `missing ${missing.join(", ")}`);

  const pki = found as GatewayPki;
  validatePki(dir, pki);
  return pki;
}

/** Writes the six PKI files into `dir` (created 0700); keys are 0600, each file replaced atomically. */
export function writeGatewayPki(dir: string, pki: GatewayPki): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  for (const field of PKI_FIELDS) {
    const mode = field.endsWith("Key") ? 0o600 : 0o644;
    writeFileAtomic(join(dir, PKI_FILES[field]), pki[field], mode);
  }
}

/** Loads the PKI from `dir`, or generates and writes one when absent (or when `recreate` is set). */
export async function ensureGatewayPki(
  dir: string,
  options: GatewayPkiOptions & { recreate?: boolean },
): Promise<{ pki: GatewayPki; created: boolean }> {
  if (!options.recreate) {
    const existing = loadGatewayPki(dir);
    if (existing) return { pki: existing, created: false };
  }
  const pki = await generateGatewayPki(options);
  writeGatewayPki(dir, pki);
  return { pki, created: true };
}

async function issueLeaf(
  x509: X509Module,
  issuer: Issuer,
  commonName: string,
  extendedKeyUsage: string,
  validity: { notBefore: Date; notAfter: Date; signingAlgorithm: webcrypto.EcdsaParams },
  extraExtensions: Extension[],
): Promise<{ cert: string; key: string }> {
  const crypto = globalThis.crypto;
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.create(
    {
      ...validity,
      serialNumber: randomSerialNumber(),
      subject: `CN=${commonName}`,
      issuer: issuer.name,
      publicKey: keys.publicKey,
      signingKey: issuer.keys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([extendedKeyUsage]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey, false, crypto),
        ...extraExtensions,
      ],
    },
    crypto,
  );
  return { cert: `${cert.toString("pem")}\n`, key: exportPrivateKey(keys.privateKey) };
}

/**
 * @peculiar/x509 loads tsyringe, which throws at import time unless `Reflect.getMetadata` exists.
 * Its decorators never need real design-time metadata, so a tiny store stands in for the
 * reflect-metadata polyfill; the import is deferred so the shim is in place first.
 */
async function loadX509(): Promise<X509Module> {
  installReflectMetadataShim();
  const loaded: X509Module & { default?: X509Module } = await import("@peculiar/x509");
  // The package is CommonJS; a code-split bundle exposes it only as the default export.
  return loaded.default ?? loaded;
}

function installReflectMetadataShim(): void {
  const reflect = Reflect as unknown as Record<string, unknown>;
  if (typeof reflect.getMetadata === "function") return;
  const store = new WeakMap<object, Map<unknown, unknown>>();
  const getOwnMetadata = (key: unknown, target: object): unknown => store.get(target)?.get(key);
  Object.assign(reflect, {
    getOwnMetadata,
    getMetadata(key: unknown, target: object): unknown {
      for (let current: object | null = target; current; current = Object.getPrototypeOf(current)) {
        const value = getOwnMetadata(key, current);
        if (value !== undefined) return value;
      }
      return undefined;
    },
    defineMetadata(key: unknown, value: unknown, target: object): void {
      const entries = store.get(target) ?? new Map<unknown, unknown>();
      entries.set(key, value);
      store.set(target, entries);
    },
  });
}

function generateKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return globalThis.crypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
}

function exportPrivateKey(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: "pkcs8", format: "pem" }).toString();
}

/** 16 random bytes with the top bit cleared, so the DER INTEGER is positive without padding. */
function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString("hex");
}

function toGeneralName(san: string): JsonGeneralName {
  const bare = san.replace(/^\[(.*)\]$/, "$1");
  return isIP(bare) ? { type: "ip", value: bare } : { type: "dns", value: san };
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

function validatePki(dir: string, pki: GatewayPki): void {
  const ca = parseCert(dir, pki, "caCert");
  for (const [certField, keyField] of CERT_PAIRS) {
    const cert = certField === "caCert" ? ca : parseCert(dir, pki, certField);
    let key: KeyObject;
    try {
      key = createPrivateKey(pki[keyField]);
    } catch {
      throw invalidPki(dir, `${PKI_FILES[keyField]} is not a valid PEM private key`);
    }
    if (!cert.checkPrivateKey(key)) {
      throw invalidPki(dir, `${PKI_FILES[keyField]} does not match ${PKI_FILES[certField]}`);
    }
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
      throw invalidPki(dir, `${PKI_FILES[certField]} was not issued by ${PKI_FILES.caCert}`);
    }
  }
}

function parseCert(dir: string, pki: GatewayPki, field: keyof GatewayPki): NodeX509Certificate {
  try {
    return new NodeX509Certificate(pki[field]);
  } catch {
    throw invalidPki(dir, `${PKI_FILES[field]} is not a valid PEM certificate`);
  }
}

function invalidPki(dir: string, problem: string): OpenShellError {
  return new OpenShellError(
    "config_invalid",
    `gateway PKI in ${dir} is incomplete or corrupt (${problem}); run \`openshell gateway start --recreate\` to regenerate it`,
  );
}
