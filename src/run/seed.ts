/**
 * The seed drive: a small FAT volume labelled CIDATA (NoCloud style) whose user-data file
 * holds KEY=VALUE lines and whose meta-data names the instance. The init reads it at boot, so
 * per-run settings never touch the image. EC2 user-data carries the same KEY=VALUE lines.
 */
import path from "node:path";
import { InputError } from "../errors.js";
import { run } from "../exec.js";
import { makePrivate, writePrivateFile } from "../private-fs.js";
import { schemaProblems } from "../config/schema.js";
import { describeControl } from "../config/schema-messages.js";

const USER_DATA_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The writer's own guard (the schema checked these values already): a user-data line is
 * NAME=VALUE up to the newline, and the init strips a trailing CR, so a name outside
 * [A-Za-z_][A-Za-z0-9_]* or a value with any control character could add or change a line.
 */
export function assertUserDataLine(name: string, value: string): string {
  if (!USER_DATA_NAME.test(name)) {
    throw new InputError(`user-data: '${name}' is not a variable name`, {
      hint: "names are letters, digits and _, not starting with a digit",
    });
  }
  const control = describeControl(value);
  if (control) {
    const hint = "user-data holds one NAME=value per line; remove the control character";
    throw new InputError(`user-data: the value of ${name} ${control}`, { hint });
  }
  return `${name}=${value}`;
}

export function renderUserData(env: Readonly<Record<string, string>>): string {
  const lines = Object.entries(env).map(([k, v]) => `${assertUserDataLine(k, v)}\n`);
  return `# kiln user-data: KEY=VALUE lines, read by the image's init at boot\n${lines.join("")}`;
}

/** Parses -e values (KEY=VALUE) with the schema's rules for env names and values; every bad one is reported at once. */
export function parseEnvFlags(values: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  const problems: string[] = [];
  for (const value of values) {
    const eq = value.indexOf("=");
    if (eq <= 0) {
      problems.push(`-e ${value}: expected NAME=value with NAME made of letters, digits and _`);
      continue;
    }
    const key = value.slice(0, eq);
    // Checked as the one-entry env: mapping it stands for, so the messages are kiln.yml's.
    const found = schemaProblems("/definitions/env", { [key]: value.slice(eq + 1) }, "-e").map((p) => p.replace(/^-e\./, "-e "));
    if (found.length > 0) problems.push(...found);
    else env[key] = value.slice(eq + 1);
  }
  if (problems.length > 0) {
    throw new InputError(problems.join("\n"), { hint: "pass each variable as -e NAME=value (KILN_ENV comes from --kiln-env)" });
  }
  return env;
}

/** What `kiln run` passes at boot: KILN_ENV from --kiln-env (an environment name) and the -e values. */
export function bootEnv(kilnEnv: string | undefined, flags: readonly string[]): Record<string, string> {
  const problems = kilnEnv ? schemaProblems("/definitions/environmentName", kilnEnv, "--kiln-env") : [];
  let env: Record<string, string> = {};
  try {
    env = parseEnvFlags(flags);
  } catch (error) {
    if (!(error instanceof InputError) || problems.length === 0) throw error;
    problems.push(error.message);
  }
  if (problems.length > 0) throw new InputError(problems.join("\n"), { hint: "for example --kiln-env test -e NAME=value" });
  return { ...(kilnEnv ? { KILN_ENV: kilnEnv } : {}), ...env };
}

/** NoCloud meta-data (YAML); the init reads instance-id into KILN_INSTANCE_ID. Ids are kiln's own, checked anyway. */
export function renderMetaData(meta: { readonly instanceId?: string }): string {
  if (meta.instanceId !== undefined && !/^[A-Za-z0-9._-]{1,128}$/.test(meta.instanceId)) {
    throw new InputError(`meta-data: instance id '${meta.instanceId}' must be letters, digits, '.', '_' or '-'`);
  }
  return meta.instanceId ? `instance-id: ${meta.instanceId}\n` : "";
}

export async function buildSeedImage(
  env: Readonly<Record<string, string>>,
  dir: string,
  meta: { readonly instanceId?: string } = {},
): Promise<string> {
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
