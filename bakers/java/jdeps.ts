/** Pure helpers around jdeps and jlink: parsing jdeps' answer, choosing the JRE's modules. */

/** Modules an app needs without naming them in its bytecode: the EC provider for TLS (ECDHE). */
export const ALWAYS_MODULES: readonly string[] = ["java.base", "jdk.crypto.ec"];

/**
 * When jdeps cannot analyse the jars (broken or unusual bytecode), the JRE gets the whole
 * Java SE plus the modules frameworks commonly reach by reflection: bigger, but it runs.
 */
export const FALLBACK_MODULES: readonly string[] = [
  "java.se",
  "jdk.unsupported",
  "jdk.crypto.ec",
  "jdk.zipfs",
  "jdk.management",
  "jdk.naming.dns",
];

const MODULE_LIST = /^[A-Za-z][\w]*(?:\.[A-Za-z][\w]*)*(?:,[A-Za-z][\w]*(?:\.[A-Za-z][\w]*)*)*$/;

/**
 * `jdeps --print-module-deps` prints one comma-separated line ("java.base,java.logging"),
 * possibly after warnings. Returns the modules, or undefined when no such line is there.
 */
export function parseModuleDeps(stdout: string): string[] | undefined {
  const lines = stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const last = lines[lines.length - 1];
  if (last === undefined || !MODULE_LIST.test(last)) return undefined;
  return last.split(",");
}

/** The modules jlink gets: what jdeps found plus the always-needed ones, sorted and unique. */
export function jreModules(found: readonly string[]): string[] {
  return [...new Set([...ALWAYS_MODULES, ...found])].sort();
}
