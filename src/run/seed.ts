/**
 * The seed drive: a small FAT volume labelled CIDATA (NoCloud style) whose user-data file
 * holds KEY=VALUE lines and whose meta-data names the instance. The init reads it at boot, so
 * per-run settings never touch the image. EC2 user-data carries the same KEY=VALUE lines.
 */
import path from "node:path";
import { InputError } from "../errors.js";
import { run } from "../exec.js";
import { makePrivate, writePrivateFile } from "../private-fs.js";

export function renderUserData(env: Readonly<Record<string, string>>): string {
  return `# kiln user-data: KEY=VALUE lines, read by the image's init at boot\n${Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join("")}`;
}

/** Parses -e values (KEY=VALUE); every bad one is reported at once. */
export function parseEnvFlags(values: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  const problems: string[] = [];
  for (const value of values) {
    const eq = value.indexOf("=");
    const key = eq > 0 ? value.slice(0, eq) : value;
    if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) problems.push(`-e ${value}: expected NAME=value with NAME made of letters, digits and _`);
    else if (value.includes("\n")) problems.push(`-e ${key}: values cannot contain newlines`);
    else env[key] = value.slice(eq + 1);
  }
  if (problems.length > 0) throw new InputError(problems.join("\n"), { hint: "pass each variable as -e NAME=value" });
  return env;
}

/** NoCloud meta-data (YAML); the init reads instance-id into KILN_INSTANCE_ID. */
export function renderMetaData(meta: { readonly instanceId?: string }): string {
  return meta.instanceId ? `instance-id: ${meta.instanceId}\n` : "";
}

export async function buildSeedImage(env: Readonly<Record<string, string>>, dir: string, meta: { readonly instanceId?: string } = {}): Promise<string> {
  const image = path.join(dir, "seed.img");
  const userData = path.join(dir, "user-data");
  const metaData = path.join(dir, "meta-data");
  // The values are in these files: owner only (0600), whatever the umask.
  await writePrivateFile(userData, renderUserData(env));
  await writePrivateFile(metaData, renderMetaData(meta));
  await run(["mkfs.fat", "-n", "CIDATA", "-C", image, "1440"]);
  await makePrivate(image); // before mcopy puts the values in
  await run(["mcopy", "-i", image, userData, metaData, "::/"], { env: { MTOOLS_SKIP_CHECK: "1" } });
  return image;
}
