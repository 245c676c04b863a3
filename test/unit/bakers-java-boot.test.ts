// A Spring Boot fat jar split into an app part and a library layer (issue 16): which entries go
// where, the library layer's cache key, the start command, and the confinement of hostile
// archives (every entry name, type, method and size is checked before anything is written).
import { mkdir, mkdtemp, readdir, readFile, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { bootLaunch, planBootSplit, writeBootEntries } from "../../bakers/java/boot-layers.js";
import { bootJarOf } from "../../bakers/java/boot-stage.js";
import { jdkReferences } from "../../bakers/java/class-refs.js";
import type { BakeContext } from "../../src/bake/context.js";
import type { Spec } from "../../src/config/types.js";
import { inspectJar } from "../../bakers/java/jar.js";
import { baker, JVM_OPTIONS } from "../../bakers/java/index.js";
import { InputError } from "../../src/errors.js";
import { classFile, makeZip, type ZipInput } from "./helpers/zip-builder.js";

const LAUNCHER = "org.springframework.boot.loader.launch.JarLauncher";
const MANIFEST = `Manifest-Version: 1.0\nMain-Class: ${LAUNCHER}\nStart-Class: com.example.Shop\nImplementation-Version: 1.4.0\n`;

function bootJar(opts: { shopLine?: string; libBytes?: string; extra?: ZipInput[] } = {}): Buffer {
  return makeZip([
    { name: "META-INF/", data: "" },
    { name: "META-INF/MANIFEST.MF", data: MANIFEST, deflate: true },
    { name: "org/springframework/boot/loader/launch/JarLauncher.class", data: classFile(61), deflate: true },
    {
      name: "BOOT-INF/classes/com/example/Shop.class",
      data: Buffer.concat([classFile(61), Buffer.from(opts.shopLine ?? "v1")]),
      deflate: true,
    },
    { name: "BOOT-INF/classes/application.properties", data: "server.port=8080\n", deflate: true },
    { name: "BOOT-INF/classpath.idx", data: '- "BOOT-INF/lib/a-1.0.jar"\n- "BOOT-INF/lib/b-2.0.jar"\n' },
    { name: "BOOT-INF/lib/", data: "" },
    // Spring Boot stores nested jars uncompressed; a deflated one must work too.
    { name: "BOOT-INF/lib/b-2.0.jar", data: makeZip([{ name: "b/B.class", data: classFile(52) }]) },
    { name: "BOOT-INF/lib/a-1.0.jar", data: opts.libBytes ?? makeZip([{ name: "a/A.class", data: classFile(52) }]), deflate: true },
    ...(opts.extra ?? []),
  ]);
}

describe("Spring Boot fat jar split", () => {
  it("puts BOOT-INF/lib's jars in the library layer and everything else in the app part", () => {
    const split = planBootSplit("shop-1.4.0.jar", bootJar());
    expect(split.libs.map((l) => l.name)).toEqual(["a-1.0.jar", "b-2.0.jar"]);
    expect(split.app.map((e) => e.name)).toEqual([
      "META-INF/",
      "META-INF/MANIFEST.MF",
      "org/springframework/boot/loader/launch/JarLauncher.class",
      "BOOT-INF/classes/com/example/Shop.class",
      "BOOT-INF/classes/application.properties",
      "BOOT-INF/classpath.idx",
    ]);
    expect(split.key).toMatch(/^[0-9a-f]{32}$/);
  });

  it("keys the library layer by the libraries' names and bytes only", () => {
    const key = planBootSplit("shop.jar", bootJar()).key;
    expect(planBootSplit("shop.jar", bootJar({ shopLine: "v2: a one-line change" })).key).toBe(key);
    expect(planBootSplit("shop.jar", bootJar({ libBytes: "another a-1.0" })).key).not.toBe(key);
    const renamed = makeZip([
      { name: "META-INF/MANIFEST.MF", data: MANIFEST },
      { name: "BOOT-INF/lib/a-1.1.jar", data: makeZip([{ name: "a/A.class", data: classFile(52) }]) },
      { name: "BOOT-INF/lib/b-2.0.jar", data: makeZip([{ name: "b/B.class", data: classFile(52) }]) },
    ]);
    expect(planBootSplit("shop.jar", renamed).key).not.toBe(key);
  });

  it("writes the app part and the libraries with fixed modes", async () => {
    const zip = bootJar();
    const split = planBootSplit("shop.jar", zip);
    const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-boot-"));
    await writeBootEntries("shop.jar", zip, split.app, path.join(dir, "app"));
    await writeBootEntries(
      "shop.jar",
      zip,
      split.libs.map((l) => l.entry),
      path.join(dir, "lib"),
      "BOOT-INF/lib/",
    );
    expect(await readFile(path.join(dir, "app/BOOT-INF/classes/application.properties"), "utf8")).toBe("server.port=8080\n");
    expect((await stat(path.join(dir, "app/META-INF/MANIFEST.MF"))).mode & 0o7777).toBe(0o644);
    expect((await stat(path.join(dir, "app/BOOT-INF/classes/com"))).mode & 0o7777).toBe(0o755);
    expect(await readdir(path.join(dir, "lib"))).toEqual(["a-1.0.jar", "b-2.0.jar"]);
    expect(await readdir(path.join(dir, "app/BOOT-INF"))).toEqual(["classes", "classpath.idx"]);
  });

  it("starts the exploded jar with the launcher its manifest names, never a hard-coded one", () => {
    expect(bootLaunch("shop-1.4.0.jar", inspectJar(bootJar()))).toEqual({
      dir: "/app/shop-1.4.0",
      cmd: ["java", ...JVM_OPTIONS, "-cp", "/app/shop-1.4.0", LAUNCHER],
    });
    const old = makeZip([
      { name: "META-INF/MANIFEST.MF", data: "Main-Class: org.springframework.boot.loader.JarLauncher\nStart-Class: com.example.Shop\n" },
      { name: "BOOT-INF/classes/com/example/Shop.class", data: classFile(52) },
    ]);
    expect(bootLaunch("shop.jar", inspectJar(old))?.cmd.at(-1)).toBe("org.springframework.boot.loader.JarLauncher");
    const plain = makeZip([{ name: "META-INF/MANIFEST.MF", data: "Main-Class: com.example.Main\n" }]);
    expect(bootLaunch("shop.jar", inspectJar(plain))).toBeUndefined();
    // A jar name that is not a plain path segment keeps java -jar.
    expect(bootLaunch("my shop.jar", inspectJar(bootJar()))).toBeUndefined();
  });
});

describe("Spring Boot fat jar confinement", () => {
  const hostile: [string, ZipInput[], RegExp][] = [
    ["a library name climbing out", [{ name: "BOOT-INF/lib/../../x.jar", data: "x" }], /BOOT-INF\/lib\/\.\.\/\.\.\/x\.jar.*\.\./],
    ["a class path climbing out", [{ name: "BOOT-INF/classes/../../../../tmp/x", data: "x" }], /\.\./],
    ["an absolute name", [{ name: "/etc/cron.d/x", data: "x" }], /\/etc\/cron\.d\/x.*absolute/],
    ["a backslash name", [{ name: "BOOT-INF\\..\\..\\x", data: "x" }], /backslash/],
    ["an empty segment", [{ name: "BOOT-INF//x", data: "x" }], /empty/],
    ["a control character", [{ name: "BOOT-INF/classes/a\nb", data: "x" }], /control/],
    [
      "a duplicate",
      [
        { name: "BOOT-INF/classes/x.txt", data: "1" },
        { name: "BOOT-INF/classes/x.txt", data: "2" },
      ],
      /twice/,
    ],
    [
      "a file that another entry needs as a directory",
      [
        { name: "BOOT-INF/classes/a", data: "file" },
        { name: "BOOT-INF/classes/a/b.class", data: "x" },
      ],
      /BOOT-INF\/classes\/a\b.*directory/,
    ],
    ["a symlink", [{ name: "BOOT-INF/classes/link", data: "/etc/shadow", unixMode: 0o120777 }], /link.*symlink/],
    ["a device or fifo", [{ name: "BOOT-INF/classes/fifo", data: "", unixMode: 0o010644 }], /not a regular file/],
    ["bzip2", [{ name: "BOOT-INF/classes/x", data: "x", method: 12 }], /method 12/],
    ["an encrypted entry", [{ name: "BOOT-INF/classes/x", data: "x", flags: 1 }], /encrypted/],
    ["a library in a subdirectory", [{ name: "BOOT-INF/lib/sub/x.jar", data: "x" }], /BOOT-INF\/lib\/sub\/x\.jar/],
    ["a library that is not a jar", [{ name: "BOOT-INF/lib/run.sh", data: "x" }], /BOOT-INF\/lib\/run\.sh/],
    ["a size over the bound", [{ name: "BOOT-INF/lib/huge.jar", data: "x", declaredSize: 0xfffffff0 }], /huge\.jar.*bytes/],
    [
      "a library that inflates to more than it declares",
      [{ name: "BOOT-INF/lib/bomb.jar", data: "A".repeat(100_000), deflate: true, declaredSize: 10 }],
      /bomb\.jar.*size/,
    ],
  ];
  for (const [what, extra, message] of hostile) {
    it(`refuses ${what}, naming the jar and the entry`, () => {
      let error: unknown;
      try {
        planBootSplit("shop-1.4.0.jar", bootJar({ extra }));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InputError);
      const e = error as InputError;
      expect(e.message).toContain("shop-1.4.0.jar");
      expect(e.message).toMatch(message);
      expect(e.hint).toMatch(/rebuild|cmd/);
    });
  }

  it("refuses an app entry that inflates to more than it declares when writing it", async () => {
    const zip = bootJar({ extra: [{ name: "BOOT-INF/classes/big.txt", data: "B".repeat(50_000), deflate: true, declaredSize: 5 }] });
    const split = planBootSplit("shop.jar", zip);
    const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-boot-"));
    await expect(writeBootEntries("shop.jar", zip, split.app, dir)).rejects.toThrow(/big\.txt.*size/);
  });
});

describe("Spring Boot detection", () => {
  it("detects the exploded start for a fat jar, given as a file or as the one jar of a directory", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-bootjar-"));
    await writeFile(path.join(dir, "shop-1.4.0.jar"), bootJar());
    const exploded = ["java", ...JVM_OPTIONS, "-cp", "/app/shop-1.4.0", LAUNCHER];
    expect((await baker.detect({ dir, file: path.join(dir, "shop-1.4.0.jar") }))?.cmd).toEqual(exploded);
    expect((await baker.detect({ dir, file: undefined }))?.cmd).toEqual(exploded);
    // A directory already holding a shop-1.4.0 entry beside the jar keeps java -jar: nothing is overwritten.
    await mkdir(path.join(dir, "shop-1.4.0"));
    expect((await baker.detect({ dir, file: undefined }))?.cmd).toEqual(["java", ...JVM_OPTIONS, "-jar", "shop-1.4.0.jar"]);
  });
});

/** A class file with just a constant pool (what jdkReferences reads), built entry by entry. */
function poolClass(entries: ({ utf8: string } | { class: number } | { long: bigint } | { tag: number; bytes: number })[]): Buffer {
  const parts: Buffer[] = [];
  let slots = 1;
  for (const e of entries) {
    if ("utf8" in e) {
      const text = Buffer.from(e.utf8);
      const head = Buffer.alloc(3);
      head[0] = 1;
      head.writeUInt16BE(text.length, 1);
      parts.push(head, text);
    } else if ("class" in e) {
      const b = Buffer.alloc(3);
      b[0] = 7;
      b.writeUInt16BE(e.class, 1);
      parts.push(b);
    } else if ("long" in e) {
      const b = Buffer.alloc(9);
      b[0] = 5;
      b.writeBigInt64BE(e.long, 1);
      parts.push(b);
      slots++;
    } else parts.push(Buffer.concat([Buffer.from([e.tag]), Buffer.alloc(e.bytes)]));
    slots++;
  }
  const head = Buffer.alloc(10);
  head.writeUInt32BE(0xcafebabe, 0);
  head.writeUInt16BE(61, 6);
  head.writeUInt16BE(slots, 8);
  return Buffer.concat([head, ...parts]);
}

describe("JDK references of the app's classes (the key of jdeps on them)", () => {
  const pool = (literal: string) =>
    poolClass([
      { utf8: "java/sql/Connection" }, // 1
      { class: 1 }, // 2
      { long: 7n }, // 3 and 4
      { utf8: "(Ljava/time/Instant;[Ljavax/net/ssl/SSLContext;)Lcom/example/Own;" }, // 5
      { utf8: "com/example/Own" }, // 6
      { class: 6 }, // 7
      { utf8: literal }, // 8
    ]);

  it("finds class constants and descriptor types of the JDK, not the app's own classes", () => {
    expect([...(jdkReferences(pool("hello")) ?? [])].sort()).toEqual([
      "java/sql/Connection",
      "java/time/Instant",
      "javax/net/ssl/SSLContext",
    ]);
  });

  it("is the same after a change that uses no new JDK class, different after one that does", () => {
    expect(jdkReferences(pool("hello, one line later"))).toEqual(jdkReferences(pool("hello")));
    expect(jdkReferences(pool("Ljava/util/logging/Logger;"))?.has("java/util/logging/Logger")).toBe(true);
  });

  it("gives up (so jdeps is keyed by the jar's bytes) on an unknown constant or a truncated pool", () => {
    expect(jdkReferences(poolClass([{ utf8: "java/lang/Object" }, { tag: 99, bytes: 2 }]))).toBeUndefined();
    expect(jdkReferences(pool("x").subarray(0, 30))).toBeUndefined();
    expect(jdkReferences(Buffer.from("not a class"))).toBeUndefined();
  });
});

describe("when a Spring Boot jar is baked exploded", () => {
  it("only with kiln's exploded cmd; a cmd the user set (java -jar) keeps the whole jar", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-bootcmd-"));
    const file = path.join(dir, "shop.jar");
    await writeFile(file, bootJar());
    const specWith = (cmd: string[]) => ({ appDir: dir, appFile: file, cmd }) as unknown as Spec;
    const exploded = ["java", ...JVM_OPTIONS, "-cp", "/app/shop", LAUNCHER];
    const boot = await bootJarOf(specWith(exploded), {} as BakeContext);
    expect(boot).toMatchObject({ jar: file, dir: "/app/shop" });
    expect(boot?.split.libs).toHaveLength(2);
    expect(await bootJarOf(specWith(["java", ...JVM_OPTIONS, "-jar", "shop.jar"]), {} as BakeContext)).toBeUndefined();
    expect(await bootJarOf(specWith(["java", "-cp", "/app/shop", LAUNCHER]), {} as BakeContext)).toBeUndefined();
  });
});
