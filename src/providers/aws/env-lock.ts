/**
 * The environment lock of both AWS modes: an EC2 launch template named kiln-lock-<app>-<env>,
 * never launched from. It is atomic because EC2 makes launch template names unique per
 * region: of any number of CreateLaunchTemplate calls for one name, exactly one succeeds and
 * every other gets InvalidLaunchTemplateName.AlreadyExistsException. The create is the
 * compare-and-set, done by EC2 itself. (The tag lock this replaces wrote a security group tag
 * and read it back, and two promotes could both read back their own value.)
 *
 * A lock left by a crashed promote is taken over when it has expired (kiln:lock-until) or when
 * its holder is this machine's same owner and that process is gone. Takeover deletes the stale
 * template by its id, never by name: by then the name may belong to a lock that a third promote
 * has just taken, and only the create decides who holds it.
 *
 * The template carries kiln:app and kiln:env but neither kiln:release nor kiln:mode, so the
 * release lookups, which filter on those, never take it for a release.
 */
import { createHash, randomBytes } from "node:crypto";
import { KilnError } from "../../errors.js";
import type { AwsClients } from "../../aws/clients.js";
import { createLockTemplate, deleteLockTemplate, describeLockTemplate } from "../../aws/ec2-lock.js";
import { processAlive } from "../../process-alive.js";

export const HOLDER_TAG = "kiln:lock-holder";
export const UNTIL_TAG = "kiln:lock-until";
const LOCK_MS = 60 * 60 * 1000;
/**
 * Holder values of locks this process failed to release (AWS kept failing the delete): as stale
 * as a crashed holder's, so a later command in the same process (kiln used as a library, tests)
 * takes them over instead of waiting an hour for its own leftover.
 */
const abandoned = new Set<string>();
/** Creates per lock(): the first, and two more after deleting a stale lock. */
const ATTEMPTS = 3;

/** Launch template names: 3 to 128 of letters, digits and ( ) . / _ -. */
export function lockTemplateName(app: string, env: string): string {
  const name = `kiln-lock-${app}-${env}`.replace(/[^A-Za-z0-9()./_-]/g, "-");
  return name.length <= 128 ? name : `${name.slice(0, 119)}-${createHash("sha256").update(name).digest("hex").slice(0, 8)}`;
}

/** "owner#pid#random": the owner (user@host) and pid tell a crashed holder on this machine. */
function parseHolder(holder: string): { who: string; pid: number } {
  const parts = holder.split("#");
  parts.pop();
  const pid = Number(parts.pop());
  return { who: parts.join("#"), pid };
}

/**
 * Takes the lock of one environment for `owner`, or throws "environment X is locked by …".
 * Returns the release, which deletes this lock (by id) and tolerates it being gone already.
 */
export async function lockEnvironment(
  clients: AwsClients,
  app: string,
  envName: string,
  owner: string,
  holdSeconds = LOCK_MS / 1000,
): Promise<() => Promise<void>> {
  const name = lockTemplateName(app, envName);
  const holderName = owner.replace(/\s/g, "_");
  const holder = `${holderName}#${process.pid}#${randomBytes(4).toString("hex")}`;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    // Sized by the caller from the plan's waits (a 2 h canary holds it longer than an hour).
    const until = Date.now() + holdSeconds * 1000;
    const created = await createLockTemplate(clients, name, `kiln lock of ${app} ${envName}`, `${holder}#${attempt}`, {
      "kiln:app": app,
      "kiln:env": envName,
      [HOLDER_TAG]: holder,
      [UNTIL_TAG]: String(until),
    });
    if (created.status === "created") return releaseOf(clients, name, created.id, envName, holder);
    const current = await describeLockTemplate(clients, name);
    // Released between the create and this read (or not yet visible): create again.
    if (!current) continue;
    const held = current.tags[HOLDER_TAG];
    // Our own create, whose answer was lost: the SDK's retry was refused because it had worked.
    if (held === holder) return releaseOf(clients, name, current.id, envName, holder);
    if (held === undefined) {
      throw new KilnError(
        `cannot lock environment ${envName}: launch template ${name} (${current.id}) exists but is not a kiln lock (no ${HOLDER_TAG} tag)`,
        {
          hint: `kiln uses that name for the environment's lock; delete or rename that launch template`,
        },
      );
    }
    const { who, pid } = parseHolder(held);
    const heldUntil = Number(current.tags[UNTIL_TAG] ?? 0);
    // A holder on this machine whose process is gone crashed: its lock is stale.
    const crashedHere = who === holderName && (!processAlive(pid) || abandoned.has(held));
    if (heldUntil > Date.now() && !crashedHere) {
      throw new KilnError(`environment ${envName} is locked by ${who} until ${new Date(heldUntil).toISOString()}`, {
        hint: `wait for that promote to finish; if it crashed, delete its lock, launch template ${name}: aws ec2 delete-launch-template --region ${clients.region} --launch-template-id ${current.id}`,
      });
    }
    await deleteLockTemplate(clients, current.id);
  }
  throw new KilnError(
    `could not lock environment ${envName}: its lock (launch template ${name}) changed hands ${ATTEMPTS} times while kiln tried`,
    {
      hint: "other promotes are taking it at the same moment; run again when they are done",
    },
  );
}

function releaseOf(clients: AwsClients, name: string, id: string, envName: string, holder: string): () => Promise<void> {
  return async () => {
    try {
      await deleteLockTemplate(clients, id);
    } catch (error) {
      abandoned.add(holder);
      throw new KilnError(
        `could not release the lock of environment ${envName} (launch template ${name}, ${id}): ${(error as Error).message}`,
        {
          hint: `it expires within an hour, and a promote from this machine and user takes it over once this process has ended; or delete it: aws ec2 delete-launch-template --region ${clients.region} --launch-template-id ${id}`,
          cause: error,
        },
      );
    }
  };
}
