import { createHash, generateKeyPair, type KeyObject, randomBytes, sign } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import { createSecureContext, type SecureContext } from "node:tls";
import { promisify } from "node:util";

const generateKeyPairAsync = promisify(generateKeyPair);
/** ECDSA signing in the libuv threadpool (node:crypto's callback form). */
const signAsync = (data: Buffer, key: KeyObject) =>
  new Promise<Buffer>((resolve, reject) =>
    sign("sha256", data, key, (error, signature) => (error ? reject(error) : resolve(signature))),
  );
const newKeyPair = () => generateKeyPairAsync("ec", { namedCurve: "P-256" });

/** Where the sandbox CA is written (§3.7); children read it through the CA variables. */
export const DEFAULT_TLS_DIR = "/etc/openshell-tls";
const CA_FILE = "openshell-ca.pem";
const BUNDLE_FILE = "ca-bundle.pem";

/** The system trust stores the combined bundle starts from (first one found). */
const SYSTEM_BUNDLES = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/cert.pem",
  "/etc/ssl/ca-bundle.pem",
];

/** Leaf certificates kept (least recently used dropped first). */
const LEAF_CACHE_SIZE = 256;
const HOUR_MS = 60 * 60 * 1000;
const CA_VALIDITY_MS = 10 * 365 * 24 * HOUR_MS;
const LEAF_VALIDITY_MS = 365 * 24 * HOUR_MS;

/**
 * §3.7's CA variables for the files in `dir`: Node reads the CA alone (added to its own roots),
 * OpenSSL-based clients (curl, git, python's ssl, requests, pip) the system bundle plus the CA.
 */
export function caEnvironment(dir: string = DEFAULT_TLS_DIR): Record<string, string> {
  const bundle = join(dir, BUNDLE_FILE);
  return {
    NODE_EXTRA_CA_CERTS: join(dir, CA_FILE),
    SSL_CERT_FILE: bundle,
    REQUESTS_CA_BUNDLE: bundle,
    CURL_CA_BUNDLE: bundle,
    GIT_SSL_CAINFO: bundle,
  };
}

/**
 * The per-sandbox ephemeral CA (§3.8): an ECDSA P-256 key made at supervisor start that never
 * leaves the supervisor's memory, and leaf certificates signed by it per host the proxy
 * terminates TLS for (SAN = the host; an IP SAN for an IP literal), cached.
 *
 * Certificates are DER-encoded here (a few fixed structures) and signed with node:crypto, not with
 * @peculiar/x509 as the gateway PKI is: importing that library costs 300–600 ms of CPU on the host
 * (its ASN.1 schema and tsyringe load at import), ~14× under TCG, and the CA must exist before the
 * first child starts (Node reads NODE_EXTRA_CA_CERTS at its start). Made this way the CA costs a
 * key generation and one signature (~3 ms warm on the host), and a leaf about the same; both run in
 * the libuv threadpool (under TCG the first one, OpenSSL's set-up included, took 0.6 s of the main
 * thread when synchronous, while the policy sync and the SSH server were starting beside it).
 */
export class SandboxCa {
  private readonly leaves = new Map<string, Promise<SecureContext>>();

  private constructor(
    private readonly key: KeyObject,
    private readonly name: Buffer,
    private readonly keyId: Buffer,
    readonly certPem: string,
  ) {}

  static async create(commonName = "OpenShell Sandbox CA"): Promise<SandboxCa> {
    const { privateKey, publicKey } = await newKeyPair();
    const spki = publicKey.export({ type: "spki", format: "der" });
    const keyId = subjectKeyId(spki);
    const name = x500Name(commonName);
    const now = Date.now();
    const der = await certificate(privateKey, {
      serial: serialNumber(),
      issuer: name,
      subject: name,
      notBefore: new Date(now - HOUR_MS),
      notAfter: new Date(now + CA_VALIDITY_MS),
      spki,
      extensions: [
        extension(OID.basicConstraints, true, seq(bool(true), int(Buffer.from([0])))),
        extension(OID.keyUsage, true, bitString(Buffer.from([0x06]), 1)), // keyCertSign | cRLSign
        extension(OID.subjectKeyId, false, octets(keyId)),
      ],
    });
    return new SandboxCa(privateKey, name, keyId, pem(der));
  }

  /**
   * Writes the CA and the combined bundle to `dir` (0755, files 0644: the sandbox user reads them).
   * Synchronous: a few hundred KiB of local files, while at a supervisor's start each awaited file
   * operation waits for a busy main thread (ten of them took 0.5 s in a VM under TCG).
   */
  writeFiles(dir: string = DEFAULT_TLS_DIR): Record<string, string> {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chmodSync(dir, 0o755);
    let system = "";
    for (const path of SYSTEM_BUNDLES) {
      const text = readIfExists(path);
      if (text !== undefined) {
        system = text;
        break;
      }
    }
    const separator = system === "" || system.endsWith("\n") ? "" : "\n";
    writeAtomic(join(dir, CA_FILE), this.certPem);
    writeAtomic(join(dir, BUNDLE_FILE), `${system}${separator}${this.certPem}`);
    return caEnvironment(dir);
  }

  /** A TLS server context presenting a leaf for `host` (cached, least recently used dropped). */
  contextFor(host: string): Promise<SecureContext> {
    const cached = this.leaves.get(host);
    if (cached) {
      this.leaves.delete(host);
      this.leaves.set(host, cached);
      return cached;
    }
    const context = this.issueLeaf(host).then(({ cert, key }) => createSecureContext({ cert, key }));
    // A failed issue is not cached: the next connection tries again.
    context.catch(() => this.leaves.get(host) === context && this.leaves.delete(host));
    this.leaves.set(host, context);
    if (this.leaves.size > LEAF_CACHE_SIZE) {
      const oldest = this.leaves.keys().next().value;
      if (oldest !== undefined) this.leaves.delete(oldest);
    }
    return context;
  }

  get cachedLeaves(): number {
    return this.leaves.size;
  }

  /** A leaf for `host` (PEM cert and PKCS#8 key). */
  async issueLeaf(host: string): Promise<{ cert: string; key: string }> {
    const { privateKey, publicKey } = await newKeyPair();
    const spki = publicKey.export({ type: "spki", format: "der" });
    const now = Date.now();
    const bare = host.replace(/^\[(.*)\]$/, "$1");
    const version = isIP(bare);
    const san =
      version === 0
        ? tlv(0x82, Buffer.from(bare, "ascii"))
        : tlv(0x87, version === 4 ? ipv4Bytes(bare) : ipv6Bytes(bare));
    const der = await certificate(this.key, {
      serial: serialNumber(),
      issuer: this.name,
      subject: x500Name(bare.length <= 64 ? bare : "openshell-leaf"),
      notBefore: new Date(now - HOUR_MS),
      notAfter: new Date(now + LEAF_VALIDITY_MS),
      spki,
      extensions: [
        extension(OID.basicConstraints, true, seq()),
        extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)), // digitalSignature
        extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
        extension(OID.subjectAltName, false, seq(san)),
        extension(OID.subjectKeyId, false, octets(subjectKeyId(spki))),
        extension(OID.authorityKeyId, false, seq(tlv(0x80, this.keyId))),
      ],
    });
    return { cert: pem(der), key: privateKey.export({ type: "pkcs8", format: "pem" }).toString() };
  }
}

// --- DER ---------------------------------------------------------------------------------------

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  subjectKeyId: "2.5.29.14",
  authorityKeyId: "2.5.29.35",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

interface CertificateFields {
  serial: Buffer;
  issuer: Buffer;
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  extensions: Buffer[];
}

async function certificate(signingKey: KeyObject, fields: CertificateFields): Promise<Buffer> {
  const algorithm = seq(oid(OID.ecdsaWithSha256));
  const tbs = seq(
    tlv(0xa0, int(Buffer.from([2]))), // v3
    int(fields.serial),
    algorithm,
    fields.issuer,
    seq(time(fields.notBefore), time(fields.notAfter)),
    fields.subject,
    fields.spki,
    tlv(0xa3, seq(...fields.extensions)),
  );
  // node:crypto signs ECDSA in DER (dsaEncoding "der"), as X.509 wants it.
  const signature = await signAsync(tbs, signingKey);
  return seq(tbs, algorithm, bitString(signature, 0));
}

function tlv(tag: number, content: Buffer): Buffer {
  const length = content.length;
  let header: Buffer;
  if (length < 0x80) header = Buffer.from([tag, length]);
  else if (length < 0x100) header = Buffer.from([tag, 0x81, length]);
  else if (length < 0x10000) header = Buffer.from([tag, 0x82, length >> 8, length & 0xff]);
  else throw new Error("DER value too long");
  return Buffer.concat([header, content]);
}

const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const octets = (bytes: Buffer) => tlv(0x04, bytes);
const bool = (value: boolean) => tlv(0x01, Buffer.from([value ? 0xff : 0]));
const bitString = (bytes: Buffer, unusedBits: number) =>
  tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), bytes]));

/** A non-negative INTEGER from big-endian bytes (minimal: no redundant leading zeros). */
function int(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0 && ((bytes[start + 1] ?? 0) & 0x80) === 0) start++;
  const trimmed = bytes.subarray(start);
  return tlv(0x02, (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split(".").map(Number);
  const bytes = [first * 40 + second];
  for (const arc of rest) {
    const groups = [arc & 0x7f];
    for (let value = arc >>> 7; value > 0; value >>>= 7) groups.unshift((value & 0x7f) | 0x80);
    bytes.push(...groups);
  }
  return tlv(0x06, Buffer.from(bytes));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

function x500Name(commonName: string): Buffer {
  return seq(set(seq(oid(OID.commonName), tlv(0x0c, Buffer.from(commonName, "utf8")))));
}

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280 §4.1.2.5). */
function time(date: Date): Buffer {
  const iso = date
    .toISOString()
    .replace(/[-:T]/g, "")
    .replace(/\.\d+Z$/, "Z"); // YYYYMMDDHHMMSSZ
  return date.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(iso.slice(2), "ascii"))
    : tlv(0x18, Buffer.from(iso, "ascii"));
}

/** 16 random bytes, positive and without a leading zero byte. */
function serialNumber(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes;
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits (the last 65 bytes for P-256). */
function subjectKeyId(spki: Buffer): Buffer {
  return createHash("sha1")
    .update(spki.subarray(spki.length - 65))
    .digest();
}

function pem(der: Buffer): string {
  const base64 = der.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN CERTIFICATE-----\n${base64}\n-----END CERTIFICATE-----\n`;
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split(".").map(Number));
}

function ipv6Bytes(address: string): Buffer {
  const [head = "", tail] = address.split("::");
  const parse = (part: string) => (part === "" ? [] : part.split(":"));
  const expand = (groups: string[]) =>
    groups.flatMap((group) => (group.includes(".") ? splitV4(group) : [Number.parseInt(group, 16)]));
  const splitV4 = (v4: string) => {
    const [a = 0, b = 0, c = 0, d = 0] = v4.split(".").map(Number);
    return [(a << 8) | b, (c << 8) | d];
  };
  const left = expand(parse(head));
  const right = tail === undefined ? [] : expand(parse(tail));
  const groups = [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  const bytes = Buffer.alloc(16);
  for (const [index, group] of groups.entries()) bytes.writeUInt16BE(group, index * 2);
  return bytes;
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function writeAtomic(path: string, text: string): void {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, text, { mode: 0o644 });
  chmodSync(temp, 0o644);
  renameSync(temp, path);
}
