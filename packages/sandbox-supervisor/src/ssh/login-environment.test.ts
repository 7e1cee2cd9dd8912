import { describe, expect, it } from "vitest";
import { buildLoginEnvironment, isForwardableEnvName, LOGIN_PATH } from "./login-environment.js";

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
});
