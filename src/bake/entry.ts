/**
 * The start file a command names (node server.js, python3 -u app.py, java -jar app.jar) must be
 * in the app: an image without it can only crash at boot, so the bake refuses it up front, from
 * the files alone, before any runtime is fetched. Bakers use these helpers in `entryProblems`.
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import type { Spec } from "../config/types.js";

/** The program name of argv[0] whichever way it is written: "node", "/usr/bin/node" → "node". */
export function programName(argv: readonly string[]): string {
  return path.posix.basename(argv[0] ?? "");
}

/**
 * The interpreter's script argument: the first argument that is not an option (nor the value of
 * one of `withValue`). Undefined when an option in `noScript` (-e, -c, -m …) runs code instead.
 */
export function scriptArgument(argv: readonly string[], withValue: ReadonlySet<string>, noScript: ReadonlySet<string>): string | undefined {
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") return argv[i + 1];
    if (!arg.startsWith("-") || arg === "-") return arg === "-" ? undefined : arg;
    const name = arg.split("=")[0]!;
    if (noScript.has(name)) return undefined;
    if (withValue.has(name) && !arg.includes("=")) i++;
  }
  return undefined;
}

/**
 * The path relative to /app of an argument naming a file of the app, or undefined when it names
 * something the bake adds or the runtime provides (node_modules, an absolute path outside /app).
 */
export function appRelative(arg: string): string | undefined {
  const rel = arg.startsWith("/app/") ? arg.slice("/app/".length) : arg.startsWith("/") ? undefined : arg;
  if (rel === undefined) return undefined;
  const normal = path.posix.normalize(rel);
  if (normal.startsWith("../") || normal === "..") return undefined;
  if (normal.split("/").includes("node_modules")) return undefined;
  return normal;
}

/** Whether the app (a directory, or the lone file the user pointed at) has a file or directory at `rel`. */
export async function appHas(spec: Pick<Spec, "appDir" | "appFile">, rel: string, kind: "file" | "dir" = "file"): Promise<boolean> {
  if (spec.appFile !== undefined) return kind === "file" && rel === path.basename(spec.appFile);
  const info = await stat(path.join(spec.appDir, rel)).catch(() => undefined);
  return kind === "file" ? Boolean(info?.isFile()) : Boolean(info?.isDirectory());
}

/** `cmd: node srv.js: srv.js does not exist in /home/me/app`, with the setting it came from. */
export function missingEntry(
  spec: Pick<Spec, "appDir" | "appFile" | "cmd">,
  rel: string,
  from = `cmd: ${(spec.cmd ?? []).join(" ")}`,
): string {
  return `${from}: ${rel} does not exist in ${spec.appFile ?? spec.appDir}`;
}
