/**
 * The local environment's load balancer: a real HAProxy, started by kiln, driven over its
 * runtime API (UNIX socket): servers are added per instance, health-checked on the app's health
 * path, weighted in or drained, and removed. Config rendering is pure; the rest is I/O.
 */
import net from "node:net";
import path from "node:path";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { KilnError } from "../../errors.js";
import { run } from "../../exec.js";

export interface HaproxyPaths {
  readonly config: string;
  readonly socket: string;
  readonly pidFile: string;
}

export function haproxyPaths(dir: string): HaproxyPaths {
  return { config: path.join(dir, "haproxy.cfg"), socket: path.join(dir, "haproxy.sock"), pidFile: path.join(dir, "haproxy.pid") };
}

export const BACKEND = "app";

/**
 * One word of haproxy.cfg. HAProxy reads a directive per line (no quoting continues a line),
 * splits words on spaces, starts comments at #, and expands $VARS in double quotes; inside
 * single quotes nothing is interpreted. So: refuse control characters, pass plain words as
 * they are, single-quote the rest ('\'' for a quote, as in a shell).
 */
export function haproxyWord(value: string, what: string): string {
  if (value === "" || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new KilnError(`${what} ${JSON.stringify(value)} cannot go into haproxy.cfg: it is empty or holds a control character`);
  }
  return /^[A-Za-z0-9_./:@%+,=~-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
}

/** A number of haproxy.cfg: a whole number in range, or nothing is written. */
function haproxyNumber(value: number, what: string, min: number, max: number): string {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new KilnError(`${what} ${value} cannot go into haproxy.cfg (${min}–${max})`);
  return String(value);
}

export function renderHaproxyConfig(opts: {
  port: number;
  socket: string;
  pidFile: string;
  healthPath: string;
  intervalMs: number;
  rise: number;
  logTarget?: string;
}): string {
  const port = haproxyNumber(opts.port, "port", 1, 65535);
  const socket = haproxyWord(opts.socket, "runtime socket path");
  const healthPath = haproxyWord(opts.healthPath, "health check path");
  const intervalMs = haproxyNumber(opts.intervalMs, "check interval", 1, 86_400_000);
  const rise = haproxyNumber(opts.rise, "healthy threshold", 1, 1000);
  // logTarget (KILN_HAPROXY_LOG=127.0.0.1:5140): request logs over syslog/UDP, for debugging.
  const log = opts.logTarget ? `  log ${haproxyWord(opts.logTarget, "KILN_HAPROXY_LOG")} local0\n` : "";
  return `# Written by kiln for a local environment; servers are added at runtime.
global
  stats socket ${socket} mode 600 level admin
  maxconn 4096
${log}
defaults
  mode http${opts.logTarget ? "\n  log global\n  option httplog" : ""}
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  # A request that fails to connect goes to another server instead of the client.
  retries 3
  option redispatch 1
  option http-server-close
  # QEMU user networking accepts the TCP connection on the host before the guest does; a guest
  # that refuses it shows up as an empty response, not a connect failure. Retrying those (for
  # idempotent requests only) is what makes a just-booted or busy instance safe behind the LB.
  retry-on conn-failure empty-response

frontend web
  bind 127.0.0.1:${port}
  default_backend ${BACKEND}

backend ${BACKEND}
  balance roundrobin
  http-request disable-l7-retry unless METH_GET || METH_HEAD
  option httpchk GET ${healthPath}
  http-check expect status 200-399
  # Without "timeout check" HAProxy gives a check answer only "inter" to arrive: a guest slowed
  # by a neighbour's boot (TCG) would be marked DOWN while it still serves.
  timeout check 5s
  default-server inter ${intervalMs}ms fastinter ${intervalMs}ms rise ${rise} fall 3
`;
}

export async function haproxyCommand(socketPath: string, command: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    let out = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new KilnError(`HAProxy runtime API did not answer '${command}' in ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on("connect", () => socket.write(`${command}\n`));
    socket.on("data", (d) => (out += d.toString()));
    socket.on("end", () => {
      clearTimeout(timer);
      resolve(out.trim());
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(new KilnError(`cannot reach HAProxy at ${socketPath}: ${error.message}`, { cause: error }));
    });
  });
}

/** What the runtime API answers when a command worked; anything else is a refusal. */
const SUCCESS = /^(|New server registered\.|Server deleted\.)$/;

/** Runs a runtime API command that must succeed ("Already exists…", "still has connections…" are failures). */
export async function haproxyDo(socketPath: string, command: string): Promise<string> {
  const answer = await haproxyCommand(socketPath, command);
  if (!SUCCESS.test(answer.trim())) throw new KilnError(`HAProxy refused '${command}': ${answer.split("\n")[0]}`);
  return answer;
}

/**
 * Takes a server out of HAProxy: maintenance, cut what is still attached (the drain period is
 * over), then delete — retried, since HAProxy refuses to delete a server with live connections.
 */
export async function removeServer(socketPath: string, server: string): Promise<void> {
  const name = `${BACKEND}/${server}`;
  await haproxyCommand(socketPath, `set server ${name} state maint`);
  for (let attempt = 0; attempt < 20; attempt++) {
    await haproxyCommand(socketPath, `shutdown sessions server ${name}`);
    const answer = (await haproxyCommand(socketPath, `del server ${name}`)).trim();
    if (answer === "Server deleted." || /No such server/i.test(answer)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new KilnError(`HAProxy would not remove server ${name}`, { hint: "kiln destroy --env … --yes, then promote again" });
}

/** `replacing`: the pid of a running HAProxy the new one takes over from (-sf: it stops listening, finishes its requests, exits). */
export async function startHaproxy(paths: HaproxyPaths, config: string, replacing?: number): Promise<void> {
  // Checked before it replaces the file the running HAProxy was started from.
  const candidate = `${paths.config}.new`;
  await writeFile(candidate, config);
  await run(["haproxy", "-c", "-q", "-f", candidate]).catch(async (error: unknown) => {
    await rm(candidate, { force: true });
    throw error;
  });
  await rename(candidate, paths.config);
  // -D: HAProxy daemonises, so the environment keeps serving after kiln exits.
  await run(["haproxy", "-D", "-f", paths.config, "-p", paths.pidFile, ...(replacing ? ["-sf", String(replacing)] : [])]);
}

export async function haproxyPid(paths: HaproxyPaths): Promise<number | undefined> {
  const pid = Number((await readFile(paths.pidFile, "utf8").catch(() => "")).trim());
  if (!pid) return undefined;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return cmdline.includes("haproxy") ? pid : undefined;
}

export interface ServerStatus {
  readonly name: string;
  readonly status: string;
  readonly weight: number;
  readonly currentSessions: number;
  /** Responses the server sent (all classes), and its errors: 5xx answers plus broken responses (HAProxy's eresp). */
  readonly responses: number;
  readonly errors: number;
}

/** `show stat` CSV rows of the app backend's servers. */
export function parseShowStat(csv: string): ServerStatus[] {
  const lines = csv.split("\n").filter(Boolean);
  const header = (lines[0] ?? "").replace(/^# /, "").split(",");
  const col = (name: string) => header.indexOf(name);
  const count = (c: string[], name: string) => Number(c[col(name)] || 0);
  return lines
    .slice(1)
    .map((l) => l.split(","))
    .filter((c) => c[col("pxname")] === BACKEND && c[col("svname")] !== "BACKEND")
    .map((c) => ({
      name: c[col("svname")] ?? "",
      status: c[col("status")] ?? "",
      weight: count(c, "weight"),
      currentSessions: count(c, "scur"),
      responses:
        ["hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other"].reduce((sum, k) => sum + count(c, k), 0) +
        count(c, "eresp"),
      errors: count(c, "hrsp_5xx") + count(c, "eresp"),
    }));
}

export async function serverStatuses(socketPath: string): Promise<ServerStatus[]> {
  return parseShowStat(await haproxyCommand(socketPath, "show stat"));
}
