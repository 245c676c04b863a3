/**
 * `kiln logs --instance`: an EC2 instance's console through GetConsoleOutput (there is no
 * streaming API: follow mode re-reads the last 64 KB and prints what is new). The line rules
 * are in console-lines.ts, which local VMs use without the AWS SDK.
 */
import { createAwsClients } from "../aws/clients.js";
import { getConsoleOutput } from "../aws/ec2.js";
import { AwsError } from "../aws/errors.js";
import { isAppLine, newConsoleLines, splitConsole } from "./console-lines.js";

export interface InstanceConsoleOptions {
  readonly instanceId: string;
  readonly region: string;
  readonly follow: boolean;
  readonly all: boolean;
  readonly intervalMs?: number;
  readonly signal?: AbortSignal;
  readonly onLine: (line: string) => void;
}

/** Prints an instance's console (app lines unless `all`); with follow, polls until aborted. */
export async function showInstanceConsole(options: InstanceConsoleOptions): Promise<{ readonly lines: number; readonly shown: number }> {
  const clients = createAwsClients({ region: options.region });
  let latest = true;
  let seen: string[] = [];
  let lines = 0;
  let shown = 0;
  for (;;) {
    let text: string;
    try {
      ({ text } = await getConsoleOutput(clients, options.instanceId, latest));
    } catch (error) {
      // Live output exists only on Nitro instances; others have the buffered output.
      if (latest && error instanceof AwsError && /Unsupported/i.test(error.code)) {
        latest = false;
        continue;
      }
      throw error;
    }
    const fresh = newConsoleLines(seen, splitConsole(text).lines);
    seen = [...seen, ...fresh].slice(-2000);
    for (const line of fresh) {
      lines++;
      if (options.all || isAppLine(line, { stampedOnly: true })) {
        shown++;
        options.onLine(line);
      }
    }
    if (!options.follow || options.signal?.aborted) return { lines, shown };
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, options.intervalMs ?? 5000);
      options.signal?.addEventListener(
        "abort",
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
    if (options.signal?.aborted) return { lines, shown };
  }
}
