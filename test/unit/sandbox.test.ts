// The build sandbox's bwrap argv, from a stage's declarative description: exactly the mounts
// asked for (system dirs and a few /etc files read-only, inputs read-only, outputs writable),
// no host home, no network unless asked, private namespaces, and a cleaned environment.
import { describe, expect, it } from "vitest";
import { npmAccess, pipAccess } from "../../src/sandbox-access.js";
import { sandboxArgv, sandboxEnv, type SystemLayout } from "../../src/sandbox.js";

const system: SystemLayout = {
  dirs: ["/usr"],
  links: { "/bin": "usr/bin", "/lib": "usr/lib", "/lib64": "usr/lib64", "/sbin": "usr/sbin" },
  etc: ["/etc/passwd", "/etc/group", "/etc/ld.so.cache", "/etc/ssl/certs", "/etc/resolv.conf", "/etc/hosts"],
};

/** The mounts as [flag, source, destination] triples (or [flag, destination] for tmpfs, proc, dev). */
function mounts(argv: readonly string[]): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    if (["--ro-bind", "--bind", "--symlink"].includes(a)) out.push([a, argv[++i]!, argv[++i]!]);
    else if (["--tmpfs", "--proc", "--dev"].includes(a)) out.push([a, argv[++i]!]);
  }
  return out;
}

describe("sandboxArgv", () => {
  it("binds exactly the system, the stage's inputs read-only and its outputs writable, network off by default", () => {
    const spec = { readOnly: ["/srv/app", "/srv/cache/python/runtime-1"], writable: ["/srv/kiln/tmp/bake-1/app"] };
    const argv = sandboxArgv(spec, ["python3.11", "-I", "-c", "pass"], system);
    expect(argv[0]).toBe("bwrap");
    const isolation = [
      "--unshare-user",
      "--unshare-pid",
      "--unshare-ipc",
      "--unshare-uts",
      "--unshare-net",
      "--die-with-parent",
      "--new-session",
    ];
    expect(argv).toEqual(expect.arrayContaining(isolation));
    expect(argv.slice(argv.indexOf("--uid"), argv.indexOf("--uid") + 4)).toEqual(["--uid", "1000", "--gid", "1000"]);
    expect(mounts(argv)).toEqual([
      ["--ro-bind", "/usr", "/usr"],
      ["--symlink", "usr/bin", "/bin"],
      ["--symlink", "usr/lib", "/lib"],
      ["--symlink", "usr/lib64", "/lib64"],
      ["--symlink", "usr/sbin", "/sbin"],
      ["--ro-bind", "/etc/passwd", "/etc/passwd"],
      ["--ro-bind", "/etc/group", "/etc/group"],
      ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"],
      ["--ro-bind", "/etc/ssl/certs", "/etc/ssl/certs"],
      ["--proc", "/proc"],
      ["--dev", "/dev"],
      ["--tmpfs", "/tmp"],
      ["--tmpfs", "/home/kiln"],
      ["--ro-bind", "/srv/app", "/srv/app"],
      ["--ro-bind", "/srv/cache/python/runtime-1", "/srv/cache/python/runtime-1"],
      ["--bind", "/srv/kiln/tmp/bake-1/app", "/srv/kiln/tmp/bake-1/app"],
    ]);
    expect(argv.slice(argv.indexOf("--chdir"))).toEqual(["--chdir", "/", "--", "python3.11", "-I", "-c", "pass"]);
    // Nothing of the host's home, /root, shadow or credentials.
    expect(argv.join(" ")).not.toMatch(/\/root|\/home\/(?!kiln)|shadow|\.aws/);
  });

  it("shares the network only when asked, and only then with the name resolution files", () => {
    const argv = sandboxArgv({ readOnly: [], writable: ["/w"], network: true, cwd: "/w" }, ["npm", "ci"], system);
    expect(argv).not.toContain("--unshare-net");
    const resolution = [
      ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"],
      ["--ro-bind", "/etc/hosts", "/etc/hosts"],
    ];
    expect(mounts(argv)).toEqual(expect.arrayContaining(resolution));
    const offline = sandboxArgv({ readOnly: [], writable: ["/w"] }, ["true"], system);
    expect(offline.join(" ")).not.toContain("resolv.conf");
  });

  it("binds parents before children, so an output inside an input stays writable", () => {
    const argv = sandboxArgv({ readOnly: ["/k/runtime"], writable: ["/k/runtime/usr/lib/python3.11"] }, ["true"], system);
    const binds = mounts(argv)
      .filter((m) => m[0] === "--ro-bind" || m[0] === "--bind")
      .map((m) => m[2])
      .filter((p) => p!.startsWith("/k"));
    expect(binds).toEqual(["/k/runtime", "/k/runtime/usr/lib/python3.11"]);
  });

  it("refuses to bind the whole host or a relative path", () => {
    expect(() => sandboxArgv({ readOnly: ["/"], writable: [] }, ["true"], system)).toThrow(/refusing/);
    expect(() => sandboxArgv({ readOnly: [], writable: ["out"] }, ["true"], system)).toThrow(/refusing/);
    expect(() => sandboxArgv({ readOnly: ["/a/../etc"], writable: [] }, ["true"], system)).toThrow(/refusing/);
  });
});

describe("the sandboxed stage's environment", () => {
  it("is built from scratch: no AWS_* or other host variables, HOME is the private one", () => {
    const env = sandboxEnv({ readOnly: [], writable: [], env: { npm_config_nodedir: "/n" } });
    expect(env).toEqual({
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      HOME: "/home/kiln",
      TMPDIR: "/tmp",
      LANG: "C.UTF-8",
      LC_ALL: "C.UTF-8",
      USER: "kiln",
      npm_config_nodedir: "/n",
    });
  });

  it("npm gets its registry settings and proxies, never credentials of other tools or host paths", () => {
    const host = {
      HOME: "/nonexistent-home",
      AWS_SECRET_ACCESS_KEY: "s",
      AWS_PROFILE: "p",
      npm_config_registry: "http://mirror.invalid/",
      npm_config_cache: "/nonexistent-home/.npm",
      HTTPS_PROXY: "http://proxy.invalid:3128",
      GITHUB_TOKEN: "t",
      npm_package_name: "x",
    };
    const access = npmAccess(host);
    expect(access.env).toEqual({ npm_config_registry: "http://mirror.invalid/", HTTPS_PROXY: "http://proxy.invalid:3128" });
    expect(access.readOnly).toEqual([]);
  });

  it("pip gets PIP_* settings and proxies only", () => {
    const access = pipAccess({
      HOME: "/nonexistent-home",
      PIP_INDEX_URL: "http://mirror.invalid/simple",
      AWS_ACCESS_KEY_ID: "k",
      no_proxy: "localhost",
    });
    expect(access.env).toEqual({ PIP_INDEX_URL: "http://mirror.invalid/simple", no_proxy: "localhost" });
  });
});
