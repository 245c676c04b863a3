// The python baker's pure parts: reading requirements.txt (what pip may install as wheels and
// what needs a source build), the wheel tags for the image's CPython and glibc, explaining pip's
// failures (recorded pip 23 output), which parts of the stdlib go into the image, and the start
// command. No Python, no processes.
import { describe, expect, it } from "vitest";
import {
  explainPipFailure,
  glibcOf,
  keepStdlibPath,
  manylinuxPlatforms,
  parseRequirements,
  pythonCommand,
  targetWheelArgs,
} from "../../bakers/python/requirements.js";

describe("parseRequirements", () => {
  it("names the local files pip reads (wheels, -r, -c, --find-links), so a wheel rebuilt under its name is not served from the old install", () => {
    const parsed = parseRequirements(
      [
        "-r base.txt",
        "--constraint=constraints.txt",
        "--find-links wheels/",
        "-f https://wheels.example/simple",
        "./wheels/local-1.0-py3-none-any.whl",
        "other @ file:wheels/other-2.0-py3-none-any.whl",
        "remote @ https://files.example/remote-1.0-py3-none-any.whl",
        "flask==3.0.3",
      ].join("\n"),
    );
    expect(parsed.problems).toEqual([]);
    expect(parsed.localInputs).toEqual([
      "base.txt",
      "constraints.txt",
      "wheels/",
      "./wheels/local-1.0-py3-none-any.whl",
      "wheels/other-2.0-py3-none-any.whl",
    ]);
  });

  it("reads names, skipping comments, blank lines and allowed options, joining continuations", () => {
    const parsed = parseRequirements(
      [
        "# pinned by pip freeze",
        "--index-url https://pypi.example/simple",
        "Flask==3.0.3  # web",
        "",
        "markupsafe>=2.1 ; python_version >= '3.8'",
        "requests[socks]==2.32.3 \\",
        "    --hash=sha256:abc",
        "wheelpkg @ https://files.example/wheelpkg-1.0-py3-none-any.whl",
        "./wheels/local-1.0-py3-none-any.whl",
      ].join("\n"),
    );
    expect(parsed.problems).toEqual([]);
    expect(parsed.requirements.map((r) => [r.name, r.line])).toEqual([
      ["Flask", 3],
      ["markupsafe", 5],
      ["requests", 6],
      ["wheelpkg", 8],
      ["./wheels/local-1.0-py3-none-any.whl", 9],
    ]);
  });

  it("lists every line that needs a source build, with its line number", () => {
    const parsed = parseRequirements(
      "-e ./mylib\ngit+https://example.invalid/repo.git#egg=thing\nthing @ git+https://example.invalid/t.git\nsdist @ https://files.example/sdist-1.0.tar.gz\n--no-binary :all:\nok==1\n",
    );
    expect(parsed.requirements.map((r) => r.name)).toEqual(["ok"]);
    expect(parsed.problems).toEqual([
      expect.stringMatching(/^requirements\.txt:1: '-e \.\/mylib' is an editable install/),
      expect.stringMatching(/^requirements\.txt:2: 'git\+https:\/\/example\.invalid\/repo\.git#egg=thing' is a version-control checkout/),
      expect.stringMatching(/^requirements\.txt:3: 'thing @ git\+https:\/\/example\.invalid\/t\.git' is a version-control checkout/),
      expect.stringMatching(/^requirements\.txt:4: 'sdist @ https:\/\/files\.example\/sdist-1\.0\.tar\.gz' is not a wheel/),
      expect.stringMatching(/^requirements\.txt:5: option '--no-binary' is not supported/),
    ]);
  });
});

describe("wheel tags for the image", () => {
  it("reads glibc from Debian's libc6 version", () => {
    expect(glibcOf("2.36-9+deb12u14")).toEqual([2, 36]);
    expect(glibcOf("1:2.41-6")).toEqual([2, 41]);
    expect(glibcOf("weird")).toBeUndefined();
  });

  it("accepts every manylinux level up to the image's glibc, with the legacy aliases", () => {
    const tags = manylinuxPlatforms([2, 36]);
    expect(tags[0]).toBe("manylinux_2_36_x86_64");
    expect(tags).toContain("manylinux_2_28_x86_64");
    expect(tags.slice(tags.indexOf("manylinux_2_17_x86_64"), tags.indexOf("manylinux_2_17_x86_64") + 2)).toEqual([
      "manylinux_2_17_x86_64",
      "manylinux2014_x86_64",
    ]);
    expect(tags).toContain("manylinux2010_x86_64");
    expect(tags[tags.length - 1]).toBe("manylinux1_x86_64");
    expect(tags).not.toContain("manylinux_2_37_x86_64");
    expect(tags).not.toContain("linux_x86_64");
  });

  it("pins pip to the image's CPython, not the host's", () => {
    const args = targetWheelArgs("3.11", [2, 36]);
    expect(args.slice(0, 11)).toEqual([
      "--only-binary=:all:",
      "--python-version",
      "3.11",
      "--implementation",
      "cp",
      "--abi",
      "cp311",
      "--abi",
      "abi3",
      "--abi",
      "none",
    ]);
    expect(args.filter((a) => a === "--platform")).toHaveLength(manylinuxPlatforms([2, 36]).length);
  });
});

describe("explainPipFailure (recorded pip 23 stderr)", () => {
  it("an unknown project or version", () => {
    const stderr =
      "Looking in links: /opt/wheels\nERROR: Could not find a version that satisfies the requirement kiln-no-such-package-xyz==1.0 (from versions: none)\nERROR: No matching distribution found for kiln-no-such-package-xyz==1.0\n";
    expect(explainPipFailure(stderr)).toEqual({
      requirement: "kiln-no-such-package-xyz==1.0",
      kind: "unresolvable",
      detail:
        "ERROR: Could not find a version that satisfies the requirement kiln-no-such-package-xyz==1.0 (from versions: none)\nERROR: No matching distribution found for kiln-no-such-package-xyz==1.0",
    });
    expect(
      explainPipFailure(
        "ERROR: Could not find a version that satisfies the requirement packaging==99.0 (from versions: 14.0, 26.3)\nERROR: No matching distribution found for packaging==99.0\n",
      ).requirement,
    ).toBe("packaging==99.0");
  });

  it("conflicting pins, an unreachable index, anything else", () => {
    expect(
      explainPipFailure(
        "ERROR: Cannot install a==1 and b==2 because these package versions have conflicting dependencies.\nERROR: ResolutionImpossible: for help visit https://pip.pypa.io/…\n",
      ).kind,
    ).toBe("conflict");
    expect(
      explainPipFailure(
        "WARNING: Retrying (Retry(total=4…)) after connection broken by 'NewConnectionError(…)'\nERROR: Could not install packages due to an OSError: Max retries exceeded with url: /simple/flask/\n",
      ).kind,
    ).toBe("network");
    expect(explainPipFailure("something odd\n")).toEqual({ kind: "other", detail: "something odd" });
  });
});

describe("the stdlib in the image", () => {
  it("keeps the library and its extension modules", () => {
    for (const kept of [
      "os.py",
      "json/__init__.py",
      "http/server.py",
      "encodings/utf_8.py",
      "lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so",
      "lib-dynload/_json.cpython-311-x86_64-linux-gnu.so",
      "email/mime/text.py",
      "sqlite3/__init__.py",
      "dist-packages/kiln-app.pth",
    ]) {
      expect(keepStdlibPath(kept), kept).toBe(true);
    }
  });

  it("drops tests, IDLE, tkinter, ensurepip, terminal and database modules and stale bytecode", () => {
    for (const dropped of [
      "test",
      "test/test_os.py",
      "idlelib",
      "tkinter/__init__.py",
      "ensurepip/__init__.py",
      "turtle.py",
      "curses/__init__.py",
      "ctypes/test/test_x.py",
      "unittest/test/test_case.py",
      "__pycache__/os.cpython-311.pyc",
      "json/__pycache__/x.pyc",
      "lib-dynload/_testcapi.cpython-311-x86_64-linux-gnu.so",
      "lib-dynload/readline.cpython-311-x86_64-linux-gnu.so",
      "lib-dynload/_curses.cpython-311-x86_64-linux-gnu.so",
      "lib-dynload/_dbm.cpython-311-x86_64-linux-gnu.so",
      "sitecustomize.py",
    ]) {
      expect(keepStdlibPath(dropped), dropped).toBe(false);
    }
  });
});

describe("pythonCommand", () => {
  it("runs the conventional entry file unbuffered (so output reaches the console at once)", () => {
    expect(pythonCommand(["requirements.txt", "main.py", "app.py"])).toEqual(["python3", "-u", "app.py"]);
    expect(pythonCommand(["server.py"])).toEqual(["python3", "-u", "server.py"]);
    expect(pythonCommand(["__main__.py", "util.py"])).toEqual(["python3", "-u", "."]);
    expect(pythonCommand(["util.py", "requirements.txt"])).toBeUndefined();
  });
});
