/**
 * StartSnapshot's encryption rules, which moto ignores (it takes no Encrypted, KmsKeyArn or
 * ParentSnapshotId at all), and the encryption DescribeSnapshots then reports.
 *
 * AWS documentation:
 * - "StartSnapshot - EBS direct APIs", https://docs.aws.amazon.com/ebs/latest/APIReference/API_StartSnapshot.html:
 *   "You can't specify ParentSnapshotId and Encrypted in the same request. If you specify both
 *   parameters, the request fails with ValidationException."
 * - "Encryption outcomes for EBS direct APIs", https://docs.aws.amazon.com/ebs/latest/userguide/ebsapis-using-encryption.html:
 *   with an unencrypted parent, the request fails with ValidationException when encryption by
 *   default is enabled or KmsKeyArn is given, else the snapshot is unencrypted; with an encrypted
 *   parent and no KmsKeyArn "the snapshot is encrypted using the same KMS key as the parent
 *   snapshot", with a KmsKeyArn the request fails with ValidationException; "If Amazon EBS
 *   encryption by default is enabled on your AWS account, you can't create unencrypted snapshots."
 *
 * The account setting is moto's own (EnableEbsEncryptionByDefault / GetEbsEncryptionByDefault),
 * so kiln and the rule see the same account; `encryptionByDefault` forces it for a test.
 */
import type { RuleContext, StrictRule } from "../layer.js";
import type { AwsRequest, AwsResponse } from "../protocol.js";
import { ebsError, isOk, readJson } from "./ebs-common.js";

export interface SnapshotEncryption {
  readonly encrypted: boolean;
  readonly kmsKeyId?: string;
}

interface State {
  /** Encryption of every snapshot started through the layer, by id. */
  readonly snapshots: Map<string, SnapshotEncryption>;
  /** The outcome decided for a StartSnapshot request, until its answer names the snapshot. */
  readonly pending: WeakMap<AwsRequest, SnapshotEncryption>;
}

const NAME = "ebs-start-snapshot";

async function accountEncryptsByDefault(request: AwsRequest, ctx: RuleContext, forced: boolean | undefined): Promise<boolean> {
  if (forced !== undefined) return forced;
  const xml = await ctx.query("ec2", request.region, { Action: "GetEbsEncryptionByDefault", Version: "2016-11-15" });
  return /<ebsEncryptionByDefault>true<\/ebsEncryptionByDefault>/.test(xml);
}

/** The account's default EBS key (moto has no GetEbsDefaultKmsKeyId): the AWS managed key's stand-in. */
function defaultKey(region: string): string {
  return `arn:aws:kms:${region}:123456789012:key/aws-ebs-default`;
}

async function parentEncryption(state: State, ctx: RuleContext, request: AwsRequest, id: string): Promise<SnapshotEncryption | undefined> {
  const known = state.snapshots.get(id);
  if (known) return known;
  const xml = await ctx.query("ec2", request.region, { Action: "DescribeSnapshots", Version: "2016-11-15", "SnapshotId.1": id });
  if (!xml.includes(`<snapshotId>${id}</snapshotId>`)) return undefined;
  const key = /<kmsKeyId>([^<]+)<\/kmsKeyId>/.exec(xml)?.[1];
  return { encrypted: /<encrypted>true<\/encrypted>/.test(xml), ...(key ? { kmsKeyId: key } : {}) };
}

/** DescribeSnapshots as AWS would answer it: the encryption each snapshot was started with. */
function rewriteDescribe(response: AwsResponse, snapshots: ReadonlyMap<string, SnapshotEncryption>): AwsResponse {
  if (!isOk(response) || snapshots.size === 0) return response;
  // moto writes <encrypted> after <snapshotId> in each snapshot's item (tags come before both).
  const item = new RegExp(
    "(<snapshotId>(snap-[0-9a-zA-Z]+)</snapshotId>(?:(?!<snapshotId>)[\\s\\S])*?)" +
      "<encrypted>(?:true|false)</encrypted>(<kmsKeyId>[^<]*</kmsKeyId>)?",
    "g",
  );
  const xml = response.body.toString("utf8").replace(item, (whole, head: string, id: string) => {
    const known = snapshots.get(id);
    if (!known) return whole;
    return `${head}<encrypted>${known.encrypted}</encrypted>${known.kmsKeyId ? `<kmsKeyId>${known.kmsKeyId}</kmsKeyId>` : ""}`;
  });
  const body = Buffer.from(xml);
  return { ...response, headers: { ...response.headers, "content-length": String(body.length) }, body };
}

export function ebsStartSnapshotRule(options: { encryptionByDefault?: boolean } = {}): StrictRule {
  const stateOf = (ctx: RuleContext) => ctx.state<State>(NAME, () => ({ snapshots: new Map(), pending: new WeakMap() }));
  return {
    name: NAME,
    source: "StartSnapshot (EBS direct APIs) and Encryption outcomes for EBS direct APIs, docs.aws.amazon.com/ebs",
    async before(request, ctx) {
      if (request.service !== "ebs" || request.action !== "StartSnapshot") return undefined;
      const state = stateOf(ctx);
      const input = request.json ?? {};
      const parentId = typeof input.ParentSnapshotId === "string" ? input.ParentSnapshotId : undefined;
      const encrypted = typeof input.Encrypted === "boolean" ? input.Encrypted : undefined;
      const key = typeof input.KmsKeyArn === "string" ? input.KmsKeyArn : undefined;
      const byDefault = await accountEncryptsByDefault(request, ctx, options.encryptionByDefault);
      const refuse = (message: string) => ebsError(request, 400, "ValidationException", "INVALID_PARAMETER_VALUE", message);
      let outcome: SnapshotEncryption;
      if (parentId) {
        if (encrypted !== undefined) return refuse("You can't specify ParentSnapshotId and Encrypted in the same request.");
        const parent = await parentEncryption(state, ctx, request, parentId);
        if (!parent)
          return ebsError(request, 404, "ResourceNotFoundException", "SNAPSHOT_NOT_FOUND", `The snapshot '${parentId}' does not exist.`);
        if (key) return refuse("KmsKeyArn can't be specified together with ParentSnapshotId: the snapshot takes its parent's encryption.");
        if (!parent.encrypted && byDefault)
          return refuse(`The parent snapshot '${parentId}' is unencrypted and this account has EBS encryption by default enabled.`);
        outcome = parent;
      } else if (encrypted === true) {
        outcome = { encrypted: true, kmsKeyId: key ?? defaultKey(request.region) };
      } else if (key) {
        return refuse("KmsKeyArn requires Encrypted set to true.");
      } else if (byDefault) {
        if (encrypted === false)
          return refuse("This account has EBS encryption by default enabled: unencrypted snapshots can't be created.");
        outcome = { encrypted: true, kmsKeyId: defaultKey(request.region) };
      } else {
        outcome = { encrypted: false };
      }
      state.pending.set(request, outcome);
      return undefined;
    },
    after(request, response, ctx) {
      const state = stateOf(ctx);
      if (request.service === "ec2" && request.action === "DescribeSnapshots") return rewriteDescribe(response, state.snapshots);
      if (request.service !== "ebs" || request.action !== "StartSnapshot" || !isOk(response)) return response;
      const outcome = state.pending.get(request);
      const id = readJson(response)?.SnapshotId;
      if (!outcome || typeof id !== "string") return response;
      state.snapshots.set(id, outcome);
      const json = readJson(response) ?? {};
      if (outcome.kmsKeyId) json.KmsKeyArn = outcome.kmsKeyId;
      const body = Buffer.from(JSON.stringify(json));
      return { ...response, headers: { ...response.headers, "content-length": String(body.length) }, body };
    },
  };
}
