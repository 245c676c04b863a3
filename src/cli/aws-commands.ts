/**
 * push, iam-policy, amis, rmi: AWS commands. The AWS SDK takes over a second to load, so its
 * modules are imported when one of these commands runs, not when the CLI starts (issue 16).
 */
import type { Command } from "commander";
import { InputError } from "../errors.js";
import type { KilnHome } from "../home.js";
import { formatBytes } from "../progress.js";

export function registerAwsCommands(program: Command, home: () => KilnHome): void {
  program
    .command("push")
    .description("register an image as an AWS AMI (EBS direct upload: seconds, incremental, resumable)")
    .argument("<ref>", "name:version")
    .option("--region <region>", "AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, then the profile's region in ~/.aws/config)")
    .option("--copy-to <regions>", "also copy the AMI to these regions (comma-separated)")
    .option("--kms-key <arn>", "encrypt the snapshot with this KMS key")
    .option("--concurrency <n>", "blocks in flight", "64")
    .option("--json", "print one JSON object with the result")
    .action(async (ref: string, opts: { region?: string; copyTo?: string; kmsKey?: string; concurrency: string; json?: boolean }) => {
      const region = await regionOrFail(opts.region);
      const [{ createAwsClients }, { pushImage }] = await Promise.all([import("../aws/clients.js"), import("../push/push.js")]);
      const concurrency = Number(opts.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256)
        throw new InputError(`--concurrency ${opts.concurrency}: must be a whole number from 1 to 256`);
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.once("SIGINT", onSignal);
      // Endpoint overrides (an emulator, a VPC endpoint) come from AWS_ENDPOINT_URL, read by the SDK.
      const copyTo = (opts.copyTo ?? "")
        .split(",")
        .map((r) => r.trim())
        .filter(Boolean)
        .map((r) => createAwsClients({ region: r }));
      const tty = process.stderr.isTTY;
      try {
        const result = await pushImage({
          ref,
          home: home(),
          clients: createAwsClients({ region }),
          concurrency,
          copyTo,
          signal: controller.signal,
          ...(opts.kmsKey ? { kmsKeyArn: opts.kmsKey } : {}),
          log: (m) => process.stderr.write(`${m}\n`),
          onProgress: (p) => {
            const line = `  ${p.doneBlocks}/${p.totalBlocks} blocks, ${formatBytes(p.bytes)}, ${formatBytes(p.bytes / Math.max(p.seconds, 0.001))}/s`;
            process.stderr.write(tty ? `\r${line}` : `${line}\n`);
          },
        });
        if (tty) process.stderr.write("\n");
        if (opts.json) return void process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        process.stdout.write(
          `${result.ref} -> ${result.ami} in ${result.region} (${result.reused ? "already registered" : `${result.uploadedBlocks} blocks uploaded in ${result.seconds.toFixed(2)}s`})\n`,
        );
        for (const c of result.copies) process.stdout.write(`  copied to ${c.region}: ${c.ami}\n`);
      } finally {
        process.off("SIGINT", onSignal);
      }
    });

  program
    .command("iam-policy")
    .description("print the least-privilege IAM policy kiln needs")
    .action(async () => {
      const { iamPolicy } = await import("../push/iam-policy.js");
      process.stdout.write(`${JSON.stringify(iamPolicy(), null, 2)}\n`);
    });

  program
    .command("amis")
    .description("list the AMIs kiln registered in a region, and which environments run them")
    .option("--region <region>", "AWS region (default: AWS_REGION)")
    .option("--app <name>", "only this app")
    .option("--json", "print JSON")
    .action(async (opts: { region?: string; app?: string; json?: boolean }) => printAmis(opts.region, opts.app, opts.json));

  program
    .command("rmi")
    .description("deregister an image's AMI and delete its snapshot (refused while an environment runs it)")
    .argument("<ref>", "name:version or sha256:…")
    .option("--region <region>", "AWS region (default: AWS_REGION)")
    .action(async (ref: string, opts: { region?: string }) => removeAmiCommand(ref, opts.region));
}

async function regionOrFail(flag: string | undefined): Promise<string> {
  const { resolveRegion } = await import("../aws/clients.js");
  const region = await resolveRegion(flag);
  if (!region)
    throw new InputError("no AWS region given", {
      hint: "pass --region eu-west-1, set AWS_REGION, or set region in the active profile of ~/.aws/config (aws configure)",
    });
  return region;
}

export async function printAmis(regionFlag: string | undefined, app: string | undefined, json: boolean | undefined): Promise<void> {
  const region = await regionOrFail(regionFlag);
  const [{ createAwsClients }, { listAmis }] = await Promise.all([import("../aws/clients.js"), import("../push/amis.js")]);
  const amis = await listAmis(createAwsClients({ region }), app);
  if (json) return void process.stdout.write(`${JSON.stringify(amis, null, 2)}\n`);
  process.stdout.write(`${"IMAGE".padEnd(30)} ${"AMI".padEnd(22)} ${"DIGEST".padEnd(20)} ${"CREATED".padEnd(25)} IN USE BY\n`);
  for (const a of amis)
    process.stdout.write(
      `${`${a.name}:${a.version}`.padEnd(30)} ${a.ami.padEnd(22)} ${a.digest.slice(0, 19).padEnd(20)} ${a.created.padEnd(25)} ${a.inUseBy.join(",") || "-"}\n`,
    );
}

export async function removeAmiCommand(ref: string, regionFlag: string | undefined): Promise<void> {
  const region = await regionOrFail(regionFlag);
  const [{ createAwsClients }, { removeAmi }] = await Promise.all([import("../aws/clients.js"), import("../push/amis.js")]);
  const removed = await removeAmi(createAwsClients({ region }), ref);
  process.stdout.write(`deregistered ${removed.ami} (${removed.name}:${removed.version}) and deleted its snapshot\n`);
}
