// What the process sees of the image's root: whether / is writable and whether a shell exists.
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";

export const SHELLS = ["/bin/sh", "/bin/bash", "/bin/busybox", "/usr/bin/sh", "/usr/bin/bash"] as const;

export function reachableShells(): string[] {
  return SHELLS.filter((shell) => existsSync(shell));
}

export async function rootWrite(): Promise<string> {
  try {
    await writeFile("/kiln-write-probe", "x");
    return "written";
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}
