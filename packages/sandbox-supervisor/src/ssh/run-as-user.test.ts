import { OpenShellError } from "@openshell/core";
import { describe, expect, it } from "vitest";
import { chooseLoginShell, findPasswdEntry, resolveRunAsUser } from "./run-as-user.js";

const PASSWD = [
  "root:x:0:0:root:/root:/bin/bash",
  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
  "sandbox:x:1000:1000:Sandbox,,,:/home/sandbox:/bin/zsh",
  "broken:x::1000::/x:/bin/sh",
  "",
].join("\n");

describe("run-as user", () => {
  it("finds passwd entries by exact name", () => {
    expect(findPasswdEntry(PASSWD, "sandbox")).toEqual({
      name: "sandbox",
      uid: 1000,
      gid: 1000,
      home: "/home/sandbox",
      shell: "/bin/zsh",
    });
    expect(findPasswdEntry(PASSWD, "sand")).toBeUndefined();
    expect(findPasswdEntry(PASSWD, "broken")).toBeUndefined();
  });

  it("keeps a real shell and replaces nologin/false or missing shells", () => {
    const exists = (path: string) => ["/bin/zsh", "/bin/bash", "/bin/sh", "/usr/sbin/nologin"].includes(path);
    expect(chooseLoginShell("/bin/zsh", exists)).toBe("/bin/zsh");
    expect(chooseLoginShell("/usr/sbin/nologin", exists)).toBe("/bin/bash");
    expect(chooseLoginShell("/bin/false", exists)).toBe("/bin/bash");
    expect(chooseLoginShell("/bin/fish", exists)).toBe("/bin/bash");
    expect(chooseLoginShell("", (path) => path === "/bin/sh")).toBe("/bin/sh");
    expect(() => chooseLoginShell("", () => false)).toThrow(/install bash/);
  });

  it("fails with an error that says how to fix an unknown user", () => {
    expect(() => resolveRunAsUser("no-such-user")).toThrow(OpenShellError);
    expect(() => resolveRunAsUser("no-such-user")).toThrow(
      "sandbox user 'no-such-user' not found in /etc/passwd; create it or pass --run-as-user",
    );
    expect(resolveRunAsUser("root")).toMatchObject({ uid: 0, gid: 0, home: "/root" });
  });
});
