/**
 * The environment lock of both AWS modes: a `kiln:lock` tag on one of the environment's
 * security groups, written then read back. AWS has no compare-and-set on tags; the read-back
 * catches two promotes that wrote at the same moment (the later write wins, the other stops).
 */
import { randomBytes } from "node:crypto";
import { KilnError } from "../../errors.js";
import type { AwsClients } from "../../aws/clients.js";
import { findSecurityGroup } from "../../aws/ec2-deploy.js";
import { tagResources, untagResources } from "../../aws/ec2.js";
import { processAlive } from "../../process-alive.js";

const LOCK_TAG = "kiln:lock";
const LOCK_MS = 60 * 60 * 1000;

export interface LockedGroup {
  readonly id: string;
  readonly vpc: string;
  readonly name: string;
}

export async function lockSecurityGroup(clients: AwsClients, group: LockedGroup, owner: string, envName: string): Promise<() => Promise<void>> {
  const holderName = owner.replace(/\s/g, "_");
  const current = (await findSecurityGroup(clients, group.vpc, group.name))?.tags[LOCK_TAG];
  if (current) {
    const [holder = "", until] = current.split(" ");
    const [who, pid] = holder.split("#");
    // A holder on this machine whose process is gone crashed: its lock is stale.
    const crashedHere = who === holderName && pid !== undefined && !processAlive(Number(pid));
    if (Number(until) > Date.now() && !crashedHere) {
      throw new KilnError(`environment ${envName} is locked by ${who} until ${new Date(Number(until)).toISOString()}`, {
        hint: `wait for that promote to finish (or remove the ${LOCK_TAG} tag of security group ${group.name} if it crashed)`,
      });
    }
  }
  const value = `${holderName}#${process.pid}#${randomBytes(4).toString("hex")} ${Date.now() + LOCK_MS}`;
  await tagResources(clients, [group.id], { [LOCK_TAG]: value });
  const readBack = (await findSecurityGroup(clients, group.vpc, group.name))?.tags[LOCK_TAG];
  if (readBack !== value) throw new KilnError(`environment ${envName} was locked by another promote at the same moment (${readBack})`);
  return async () => {
    // After destroy the group is gone, and the lock with it.
    await untagResources(clients, [group.id], [LOCK_TAG]).catch(() => undefined);
  };
}
