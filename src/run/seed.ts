/**
 * The seed drive: a small FAT volume labelled CIDATA (NoCloud style) whose user-data file
 * holds KEY=VALUE lines and whose meta-data names the instance. The init reads it at boot, so
 * per-run settings never touch the image. EC2 user-data carries the same KEY=VALUE lines.
 */
import { readFile, stat } from "node:fs/promises";
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

/** One variable checked as the one-entry env: mapping it stands for, so the messages are kiln.yml's. */
function checkVariable(name: string, value: string, label: string): string[] {
  return schemaProblems("/definitions/env", { [name]: value }, label).map((p) => p.replace(`${label}.`, `${label} `));
}

const NO_NAME = "expected NAME=value with NAME made of letters, digits and _";

/**
 * One KEY=VALUE entry of -e or an env file; a bare NAME takes the host's value (as Docker does).
 * `base` prefixes problems about a named variable ("-e", "app.env:3"); `whole` those without a name.
 */
function parseEntry(
  entry: string,
  where: { readonly base: string; readonly whole: string },
  hostEnv: NodeJS.ProcessEnv,
  unset: (name: string) => string,
): { problems: string[] } | { name: string; value: string } {
  const eq = entry.indexOf("=");
  const name = eq < 0 ? entry : entry.slice(0, eq);
  if (name === "") return { problems: [`${where.whole}: ${NO_NAME}`] };
  let value: string;
  if (eq >= 0) value = entry.slice(eq + 1);
  else if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return { problems: checkVariable(name, "", where.base) };
  else if (hostEnv[name] === undefined) return { problems: [`${where.base} ${name}: ${unset(name)}`] };
  else value = hostEnv[name]!;
  const found = checkVariable(name, value, where.base);
  return found.length > 0 ? { problems: found } : { name, value };
}

/**
 * Parses -e values with the schema's rules for env names and values; every bad one is reported
 * at once. -e NAME (no '=') passes the host's value, and is an error when the host has none.
 */
export function parseEnvFlags(values: readonly string[], hostEnv: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  const problems: string[] = [];
  for (const value of values) {
    const parsed = parseEntry(
      value,
      { base: "-e", whole: `-e ${value}` },
      hostEnv,
      (name) => `${name} is not set in this shell (-e NAME passes the host's value); set it, or pass -e ${name}=value`,
    );
    if ("problems" in parsed) problems.push(...parsed.problems);
    else env[parsed.name] = parsed.value;
  }
  if (problems.length > 0) {
    throw new InputError(problems.join("\n"), { hint: "pass each variable as -e NAME=value (KILN_ENV comes from --kiln-env)" });
  }
  return env;
}

/**
 * Parses an env file in Docker's format: KEY=VALUE lines (the value is the rest of the line,
 * quotes included), KEY alone for the host's value, # comments and blank lines skipped. A trailing
 * CR (a file saved with Windows line ends) is dropped; every other value is checked like -e's.
 */
export function parseEnvFile(text: string, file: string, hostEnv: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  const problems: string[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.replace(/\r$/, "").replace(/^\s+/, "");
    if (line === "" || line.startsWith("#")) return;
    const at = `${file}:${index + 1}`;
    const parsed = parseEntry(
      line,
      { base: at, whole: at },
      hostEnv,
      (name) => `${name} is not set in this shell (a line without '=' passes the host's value); set it, or write ${name}=value`,
    );
    if ("problems" in parsed) problems.push(...parsed.problems);
    else env[parsed.name] = parsed.value;
  });
  if (problems.length > 0) throw new InputError(problems.join("\n"), { hint: `fix these lines of ${file}: NAME=value, one a line` });
  return env;
}

/**
 * What `kiln run` passes at boot: KILN_ENV from --kiln-env (an environment name), the --env-file
 * files' variables, and the -e values over them (as in Docker).
 */
export function bootEnv(
  kilnEnv: string | undefined,
  flags: readonly string[],
  files: readonly { readonly name: string; readonly text: string }[] = [],
  hostEnv: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const problems = kilnEnv ? schemaProblems("/definitions/environmentName", kilnEnv, "--kiln-env") : [];
  const env: Record<string, string> = {};
  const collect = (work: () => Record<string, string>) => {
    try {
      Object.assign(env, work());
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      problems.push(error.message);
    }
  };
  for (const file of files) collect(() => parseEnvFile(file.text, file.name, hostEnv));
  collect(() => parseEnvFlags(flags, hostEnv));
  if (problems.length > 0) throw new InputError(problems.join("\n"), { hint: "for example --kiln-env test -e NAME=value" });
  return { ...(kilnEnv ? { KILN_ENV: kilnEnv } : {}), ...env };
}

/** Reads --env-file files (small text files; a bigger one is not an env file). */
export async function readEnvFiles(paths: readonly string[]): Promise<{ name: string; text: string }[]> {
  const files: { name: string; text: string }[] = [];
  for (const file of paths) {
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) throw new InputError(`--env-file ${file}: no such file`, { hint: "give the path of a file of NAME=value lines" });
    if (info.size > 1024 * 1024)
      throw new InputError(`--env-file ${file}: ${info.size} bytes, too big for an env file (at most 1 MiB)`, {
        hint: "an env file holds NAME=value lines",
      });
    files.push({ name: file, text: await readFile(file, "utf8") });
  }
  return files;
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
