/**
 * The JDK classes a class file refers to, read from its constant pool without a JVM: every
 * CONSTANT_Class name and every `L<name>;` in its Utf8 constants (descriptors, signatures,
 * annotations; string literals too, which only makes the set larger). jdeps decides the JRE's
 * modules from the classes an app references, so this set is a sound cache key for jdeps on the
 * app's own classes: a one-line change that uses no new JDK class does not run jdeps again.
 */

/** Packages of the JDK's modules (java.*, javax.*, jdk.*, sun.*, com.sun.*, the W3C/SAX/GSS APIs). */
const JDK_PREFIXES = ["java/", "javax/", "jdk/", "sun/", "com/sun/", "org/w3c/", "org/xml/", "org/ietf/", "netscape/"];

/** Bytes each constant pool tag takes after the tag byte; Utf8 (1) is variable and read apart. */
const FIXED: Readonly<Record<number, number>> = {
  3: 4,
  4: 4,
  5: 8,
  6: 8,
  7: 2,
  8: 2,
  9: 4,
  10: 4,
  11: 4,
  12: 4,
  15: 3,
  16: 2,
  17: 4,
  18: 4,
  19: 2,
  20: 2,
};

/** The JDK class names one class file refers to, or undefined when its constant pool cannot be read. */
export function jdkReferences(bytes: Buffer): Set<string> | undefined {
  if (bytes.length < 10 || bytes.readUInt32BE(0) !== 0xcafebabe) return undefined;
  const count = bytes.readUInt16BE(8);
  const utf8 = new Map<number, string>();
  const classIndexes: number[] = [];
  let at = 10;
  for (let i = 1; i < count; i++) {
    if (at >= bytes.length) return undefined;
    const tag = bytes[at]!;
    if (tag === 1) {
      if (at + 3 > bytes.length) return undefined;
      const length = bytes.readUInt16BE(at + 1);
      if (at + 3 + length > bytes.length) return undefined;
      // Modified UTF-8 differs from UTF-8 only for NUL and supplementary characters, never in class names' ASCII parts.
      utf8.set(i, bytes.toString("utf8", at + 3, at + 3 + length));
      at += 3 + length;
      continue;
    }
    const size = FIXED[tag];
    if (size === undefined || at + 1 + size > bytes.length) return undefined;
    if (tag === 7) classIndexes.push(bytes.readUInt16BE(at + 1));
    at += 1 + size;
    if (tag === 5 || tag === 6) i++; // long and double take two slots
  }
  const refs = new Set<string>();
  const keep = (name: string) => {
    if (JDK_PREFIXES.some((p) => name.startsWith(p))) refs.add(name);
  };
  for (const index of classIndexes) {
    const name = utf8.get(index);
    if (name !== undefined && !name.startsWith("[")) keep(name);
  }
  for (const text of utf8.values()) for (const m of text.matchAll(/L([A-Za-z_$][\w$/]*);/g)) keep(m[1]!);
  return refs;
}
