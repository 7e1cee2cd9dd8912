import { createPublicKey, verify } from "node:crypto";
import ssh2 from "ssh2";
import { describe, expect, it } from "vitest";
import { generateHostKey } from "./host-key.js";

describe("generateHostKey", () => {
  it("produces OpenSSH Ed25519 keys ssh2 parses and signs with, every time", () => {
    // ssh2's own generator fails about 1 in 256; 2000 keys would all but surely hit that.
    for (let i = 0; i < 2000; i++) {
      const parsed = ssh2.utils.parseKey(generateHostKey());
      if (parsed instanceof Error) throw parsed;
      const key = Array.isArray(parsed) ? parsed[0]! : parsed;
      expect(key.type).toBe("ssh-ed25519");
      if (i % 200 === 0) {
        const data = Buffer.from(`payload ${i}`);
        const signature = key.sign(data);
        expect(signature).toBeInstanceOf(Buffer);
        expect(key.verify(data, signature as Buffer)).toBe(true);
        const blob = key.getPublicSSH();
        expect(blob.subarray(blob.length - 32)).toHaveLength(32);
        expect(createPublicKey(key.getPublicPEM()).asymmetricKeyType).toBe("ed25519");
        expect(verify(null, data, createPublicKey(key.getPublicPEM()), signature as Buffer)).toBe(true);
      }
    }
  });

  it("is fresh on every call", () => {
    expect(generateHostKey()).not.toBe(generateHostKey());
  });
});
