/** AMIs kiln registered in a region, which environments run them, and their removal. */
import { InputError, NotFoundError } from "../errors.js";
import type { AwsClients } from "../aws/clients.js";
import { findGroups } from "../aws/autoscaling.js";
import { deleteSnapshot, deregisterAmi, findKilnAmis, findKilnSnapshot } from "../aws/ec2.js";

export interface AmiListing {
  readonly name: string;
  readonly version: string;
  readonly digest: string;
  readonly ami: string;
  readonly created: string;
  readonly snapshot: string | undefined;
  /** Environments whose Auto Scaling groups run this digest. */
  readonly inUseBy: readonly string[];
}

export async function listAmis(clients: AwsClients, app?: string): Promise<AmiListing[]> {
  const amis = await findKilnAmis(clients, app ? { "kiln:app": app } : {});
  const groups = await findGroups(clients, {});
  return amis
    .filter((a) => a.tags["kiln:digest"])
    .map((a) => {
      const digest = a.tags["kiln:digest"]!;
      return {
        name: a.tags["kiln:app"] ?? "",
        version: a.tags["kiln:version"] ?? "",
        digest,
        ami: a.imageId,
        created: a.created,
        snapshot: a.snapshotId,
        inUseBy: [...new Set(groups.filter((g) => g.tags["kiln:digest"] === digest).map((g) => g.tags["kiln:env"] ?? g.name))].sort(),
      };
    });
}

/** Deregisters the AMI of `ref` (name:version or sha256:…) and deletes its snapshot; refuses while an environment runs it. */
export async function removeAmi(clients: AwsClients, ref: string): Promise<AmiListing> {
  const all = await listAmis(clients);
  const match = all.find((a) => a.digest === ref || `${a.name}:${a.version}` === ref);
  if (!match)
    throw new NotFoundError(`no kiln AMI for ${ref} in ${clients.region}`, { hint: `kiln images --region ${clients.region} lists them` });
  if (match.inUseBy.length > 0)
    throw new InputError(`${ref} (${match.ami}) is running in ${match.inUseBy.join(", ")}`, {
      hint: "promote another release there (or kiln destroy the environment) first",
    });
  await deregisterAmi(clients, match.ami);
  const snapshot = (await findKilnSnapshot(clients, match.digest)) ?? match.snapshot;
  if (snapshot) await deleteSnapshot(clients, snapshot);
  return match;
}
