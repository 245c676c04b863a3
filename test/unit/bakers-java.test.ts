// The java baker's pure parts: reading jars (zip central directory, stored and deflated
// entries, the manifest with continuation lines, class file versions, Spring Boot layout),
// jdeps' answer, the JRE's module set, names from jar file names, and detection on jars built
// here byte by byte. No JVM, no processes.
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { baker } from "../../bakers/java/index.js";
import {
  classFileMajor,
  inspectJar,
  javaReleaseOf,
  nameAndVersionOf,
  parseManifest,
  readZipEntries,
  readZipEntry,
  ZipFormatError,
} from "../../bakers/java/jar.js";
import { checkClassVersion } from "../../bakers/java/jdk.js";
import { jreModules, parseModuleDeps } from "../../bakers/java/jdeps.js";
import { InputError } from "../../src/errors.js";
import { classFile, makeZip } from "./helpers/zip-builder.js";

const MANIFEST =
  "Manifest-Version: 1.0\r\nMain-Class: com.example.shop.Appli\r\n cation\r\nImplementation-Version: 1.4.0\r\n\r\nName: com/example/\r\nSealed: true\r\n";

describe("zip and jar reading", () => {
  it("lists entries and reads stored and deflated ones", () => {
    const zip = makeZip([
      { name: "META-INF/MANIFEST.MF", data: MANIFEST, deflate: true },
      { name: "com/example/shop/Application.class", data: classFile(61) },
    ]);
    const entries = readZipEntries(zip);
    expect(entries.map((e) => [e.name, e.method])).toEqual([
      ["META-INF/MANIFEST.MF", 8],
      ["com/example/shop/Application.class", 0],
    ]);
    expect(readZipEntry(zip, entries[0]!).toString()).toBe(MANIFEST);
    expect(classFileMajor(readZipEntry(zip, entries[1]!))).toBe(61);
  });

  it("rejects what is not a zip", () => {
    expect(() => readZipEntries(Buffer.from("definitely not a zip file, just text"))).toThrow(ZipFormatError);
  });

  it("parses manifest main attributes, joining continuation lines and stopping at the first blank line", () => {
    expect(parseManifest(MANIFEST)).toEqual({
      "Manifest-Version": "1.0",
      "Main-Class": "com.example.shop.Application",
      "Implementation-Version": "1.4.0",
    });
    expect(parseManifest("")).toEqual({});
  });

  it("inspects a plain executable jar: Main-Class and the newest class version (versioned entries excluded)", () => {
    const zip = makeZip([
      { name: "META-INF/MANIFEST.MF", data: MANIFEST, deflate: true },
      { name: "com/example/shop/Application.class", data: classFile(61), deflate: true },
      { name: "com/example/shop/Old.class", data: classFile(52) },
      { name: "META-INF/versions/21/com/example/shop/New.class", data: classFile(65) },
    ]);
    expect(inspectJar(zip)).toMatchObject({
      layout: "plain",
      mainClass: "com.example.shop.Application",
      startClass: undefined,
      classMajor: 61,
    });
  });

  it("recognises a Spring Boot fat jar (launcher Main-Class, Start-Class, BOOT-INF/)", () => {
    const zip = makeZip([
      { name: "META-INF/MANIFEST.MF", data: "Main-Class: org.springframework.boot.loader.JarLauncher\nStart-Class: com.example.Shop\n" },
      { name: "org/springframework/boot/loader/JarLauncher.class", data: classFile(52) },
      { name: "BOOT-INF/classes/com/example/Shop.class", data: classFile(61), deflate: true },
      { name: "BOOT-INF/lib/dep.jar", data: makeZip([{ name: "x/Y.class", data: classFile(52) }]) },
    ]);
    expect(inspectJar(zip)).toMatchObject({
      layout: "spring-boot",
      mainClass: "org.springframework.boot.loader.JarLauncher",
      startClass: "com.example.Shop",
      classMajor: 61,
    });
  });

  it("maps class versions to Java releases and refuses classes newer than the runtime", () => {
    expect(javaReleaseOf(52)).toBe(8);
    expect(javaReleaseOf(61)).toBe(17);
    expect(classFileMajor(Buffer.from("nope"))).toBeUndefined();
    expect(() => checkClassVersion("/x/app.jar", 61)).not.toThrow();
    expect(() => checkClassVersion("/x/app.jar", undefined)).not.toThrow();
    expect(() => checkClassVersion("/x/app.jar", 65)).toThrow(InputError);
    expect(() => checkClassVersion("/x/app.jar", 65)).toThrow(
      /app\.jar has classes for Java 21 \(class file version 65\), but the java baker's runtime is Java 17/,
    );
  });

  it("takes name and version from jar file names", () => {
    expect(nameAndVersionOf("shop-1.4.0.jar")).toEqual({ name: "shop", version: "1.4.0" });
    expect(nameAndVersionOf("hello-java-0.1.0-SNAPSHOT.jar")).toEqual({ name: "hello-java", version: "0.1.0-SNAPSHOT" });
    expect(nameAndVersionOf("hello-java.jar")).toEqual({ name: "hello-java" });
  });
});

describe("jdeps and the JRE's modules", () => {
  it("reads jdeps --print-module-deps output, after warnings", () => {
    expect(parseModuleDeps("java.base,jdk.httpserver\n")).toEqual(["java.base", "jdk.httpserver"]);
    expect(parseModuleDeps("Warning: split package: org.x\njava.base,java.logging,java.sql\n\n")).toEqual([
      "java.base",
      "java.logging",
      "java.sql",
    ]);
    expect(parseModuleDeps("")).toBeUndefined();
    expect(parseModuleDeps("Error: app.jar is a multi-release jar file but --multi-release option is not set\n")).toBeUndefined();
  });

  it("always adds java.base and the EC provider, sorted and unique", () => {
    expect(jreModules(["jdk.httpserver", "java.base"])).toEqual(["java.base", "jdk.crypto.ec", "jdk.httpserver"]);
    expect(jreModules([])).toEqual(["java.base", "jdk.crypto.ec"]);
  });
});

describe("java detection", () => {
  async function jarFile(name: string, manifest: string | undefined): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-jar-"));
    const file = path.join(dir, name);
    await writeFile(
      file,
      makeZip([...(manifest ? [{ name: "META-INF/MANIFEST.MF", data: manifest }] : []), { name: "a/B.class", data: classFile(61) }]),
    );
    return file;
  }

  it("an executable jar: java -jar with the VM defaults, name and version from the file", async () => {
    const file = await jarFile("shop-1.4.0.jar", "Main-Class: a.B\n");
    expect(await baker.detect({ dir: path.dirname(file), file })).toEqual({
      name: "shop",
      version: "1.4.0",
      port: 8080,
      cmd: ["java", "-XX:MaxRAMPercentage=75", "-XX:+ExitOnOutOfMemoryError", "-jar", "shop-1.4.0.jar"],
    });
  });

  it("a jar whose Main-Class is not in it: refused before the bake fetches anything (issue 18 item 11)", async () => {
    const good = await jarFile("shop.jar", "Main-Class: a.B\n");
    const spec = (file: string) => ({ appDir: path.dirname(file), appFile: file, cmd: ["java", "-jar", path.basename(file)] }) as never;
    expect(await baker.entryProblems!(spec(good))).toEqual([]);
    const typo = await jarFile("shop.jar", "Main-Class: a.b\n");
    expect(await baker.entryProblems!(spec(typo))).toEqual([
      "cmd: java -jar shop.jar: shop.jar's manifest names Main-Class a.b, but the jar has no a/b.class",
    ]);
  });

  it("a jar without Main-Class: a problem that names the manifest attribute and the cmd alternative", async () => {
    const file = await jarFile("lib.jar", "Manifest-Version: 1.0\n");
    const detection = await baker.detect({ dir: path.dirname(file), file });
    expect(detection?.cmd).toBeUndefined();
    expect(detection?.problems?.[0]).toMatch(
      /^cmd: lib\.jar has no Main-Class in META-INF\/MANIFEST\.MF.*cmd: \[java, -cp, lib\.jar, com\.example\.Main\]/,
    );
  });

  it("a directory: its one jar; none is not a java app; two need a choice", async () => {
    const file = await jarFile("app.jar", "Main-Class: a.B\n");
    const dir = path.dirname(file);
    expect((await baker.detect({ dir, file: undefined }))?.cmd).toEqual([
      "java",
      "-XX:MaxRAMPercentage=75",
      "-XX:+ExitOnOutOfMemoryError",
      "-jar",
      "app.jar",
    ]);
    expect(await baker.detect({ dir: await mkdtemp(path.join(os.tmpdir(), "kiln-nojar-")), file: undefined })).toBeUndefined();
    await writeFile(path.join(dir, "other.jar"), makeZip([{ name: "x", data: "y" }]));
    expect((await baker.detect({ dir, file: undefined }))?.problems?.[0]).toMatch(
      /holds 2 jars \(app\.jar, other\.jar\); point kiln at the one to run/,
    );
  });

  it("a file that is not a jar is left to other bakers; a broken jar is a problem", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-notjar-"));
    await writeFile(path.join(dir, "server"), "\x7fELF....");
    expect(await baker.detect({ dir, file: path.join(dir, "server") })).toBeUndefined();
    await writeFile(path.join(dir, "broken.jar"), "PK\x03\x04 truncated");
    expect((await baker.detect({ dir, file: path.join(dir, "broken.jar") }))?.problems?.[0]).toMatch(/broken\.jar is not a readable jar/);
  });
});
