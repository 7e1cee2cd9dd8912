import { generateKeyPairSync, randomBytes } from "node:crypto";

const KEY_TYPE = "ssh-ed25519";

/**
 * A fresh Ed25519 host key as an OpenSSH private key (openssh-key-v1, unencrypted), the format
 * ssh2 reads. Encoded here because ssh2 does not read PKCS#8 Ed25519 keys and its own generator
 * mangles public keys that start with a zero byte (about 1 key in 256, mscdex/ssh2#1390).
 * The key lives only in memory: clients reach the server through the gateway, which does not pin it.
 */
export function generateHostKey(): string {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const seed = Buffer.from(privateKey.export({ format: "jwk" }).d!, "base64url");
  const pub = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
  const publicBlob = Buffer.concat([sshString(KEY_TYPE), sshString(pub)]);
  const check = randomBytes(4);
  const unpadded = Buffer.concat([
    check,
    check,
    publicBlob,
    sshString(Buffer.concat([seed, pub])),
    sshString(""),
  ]);
  const padding = Buffer.from(Array.from({ length: (8 - (unpadded.length % 8)) % 8 }, (_, i) => i + 1));
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    uint32(1),
    sshString(publicBlob),
    sshString(Buffer.concat([unpadded, padding])),
  ]);
  const lines = body.toString("base64").match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

function uint32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
}

function sshString(value: string | Buffer): Buffer {
  const data = typeof value === "string" ? Buffer.from(value) : value;
  return Buffer.concat([uint32(data.length), data]);
}
