import { describe, expect, it } from "vitest";
import {
  buildLoginEnvironment,
  execCommandLine,
  isForwardableEnvName,
  LOGIN_PATH,
  withoutStartupFiles,
} from "./login-environment.js";

const user = { name: "sandbox", uid: 1000, gid: 1000, home: "/home/sandbox", shell: "/bin/bash" };

describe("login environment", () => {
  it("accepts locale, terminal and OPENSHELL_ variables only", () => {
    for (const name of ["TERM", "LANG", "LC_ALL", "LC_CTYPE", "COLORTERM", "OPENSHELL_TRACE"]) {
      expect(isForwardableEnvName(name)).toBe(true);
    }
    for (const name of ["LD_PRELOAD", "PATH", "BASH_ENV", "HOME", "LC_", "lc_all", "XOPENSHELL_X"]) {
      expect(isForwardableEnvName(name)).toBe(false);
    }
  });

  it("puts the sandbox's Python venv first on PATH, then the usual system directories", () => {
    expect(LOGIN_PATH.split(":")).toEqual([
      "/sandbox/.venv/bin",
      "/usr/local/sbin",
      "/usr/local/bin",
      "/usr/sbin",
      "/usr/bin",
      "/sbin",
      "/bin",
    ]);
  });

  it("builds the environment from scratch, with the PTY's TERM and OPENSHELL_SANDBOX fixed", () => {
    expect(
      buildLoginEnvironment({
        user,
        term: "xterm-kitty",
        extra: { OPENSHELL_SANDBOX_NAME: "box", OPENSHELL_SANDBOX: "0" },
        requested: { LANG: "C.UTF-8", TERM: "vt100" },
      }),
    ).toEqual({
      HOME: "/home/sandbox",
      USER: "sandbox",
      LOGNAME: "sandbox",
      SHELL: "/bin/bash",
      PATH: LOGIN_PATH,
      TERM: "xterm-kitty",
      LANG: "C.UTF-8",
      OPENSHELL_SANDBOX_NAME: "box",
      OPENSHELL_SANDBOX: "1",
    });
    expect(buildLoginEnvironment({ user, term: undefined, extra: {}, requested: {} }).TERM).toBe("dumb");
  });

  it("runs exec in the login shell, or in a bash (else sh) that reads no startup file", () => {
    const zshUser = { ...user, shell: "/usr/bin/zsh" };
    const everything = () => true;
    expect(execCommandLine(zshUser, "tar -cf - .", false, everything)).toEqual({
      file: "/usr/bin/zsh",
      args: ["-lc", "tar -cf - ."],
    });
    expect(execCommandLine(zshUser, "tar -cf - .", true, everything)).toEqual({
      file: "/bin/bash",
      args: ["--noprofile", "--norc", "-c", "tar -cf - ."],
    });
    expect(execCommandLine(zshUser, "true", true, (path) => path === "/bin/sh")).toEqual({
      file: "/bin/sh",
      args: ["-c", "true"],
    });
    expect(withoutStartupFiles({ BASH_ENV: "/x", ENV: "/y", HOME: "/h" })).toEqual({ HOME: "/h" });
  });
});
