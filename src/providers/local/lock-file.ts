/**
 * A lock file that several kiln processes can race for safely.
 *
 * - Created whole: the content is written to a private temporary file first and then linked to
 *   the lock's name (link(2) fails if the name exists), so a reader never sees a partial lock.
 * - A lock whose holder died is taken over, but only one process at a time may take over (a
 *   short-lived guard file), and the takeover moves away exactly the file it judged stale (same
 *   inode), never a fresh lock another process has just created.
 */
import { randomBytes } from "node:crypto";
import { link, open, rename, unlink } from "node:fs/promises";
import { KilnError } from "../../errors.js";
import { processAlive } from "../../process-alive.js";
import { PRIVATE_FILE_MODE } from "../../private-fs.js";

export interface LockHolder {
  readonly pid: number;
  readonly owner: string;
  readonly at: string;
  /** Tells this holder's lock from a later one of the same process. */
  readonly nonce: string;
}

/** What was read from a lock file: its holder, and the identity (inode and bytes) a removal checks. */
type Seen =
  | { readonly state: "gone" }
  | { readonly state: "held"; readonly holder: LockHolder; readonly ino: number; readonly text: string }
  | { readonly state: "unreadable"; readonly ino: number; readonly text: string; readonly ageMs: number };
type Present = Exclude<Seen, { state: "gone" }>;

/** A lock file that does not parse is taken as being written (by an older kiln) until it is this old. */
const UNREADABLE_GRACE_MS = 10_000;
const ATTEMPTS = 200;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function uniqueSuffix(): string {
  return `${process.pid}-${randomBytes(6).toString("hex")}`;
}

/** Creates `file` with `content` only if it does not exist; false when it does. */
async function createWhole(file: string, content: string): Promise<boolean> {
  const tmp = `${file}.new-${uniqueSuffix()}`;
  const fh = await open(tmp, "wx", PRIVATE_FILE_MODE);
  try {
    await fh.chmod(PRIVATE_FILE_MODE);
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockHolder>;
    if (typeof value !== "object" || value === null || !Number.isInteger(value.pid)) return undefined;
    return { pid: value.pid!, owner: String(value.owner ?? "?"), at: String(value.at ?? ""), nonce: String(value.nonce ?? "") };
  } catch {
    return undefined;
  }
}

/** Reads a lock file and the inode it was read from (the identity a takeover checks). */
export async function readLockFile(file: string): Promise<Seen> {
  const fh = await open(file, "r").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (!fh) return { state: "gone" };
  try {
    const info = await fh.stat();
    const text = await fh.readFile("utf8");
    const holder = parseHolder(text);
    if (holder) return { state: "held", holder, ino: info.ino, text };
    return { state: "unreadable", ino: info.ino, text, ageMs: Date.now() - info.mtimeMs };
  } finally {
    await fh.close();
  }
}

function isStale(seen: Seen): boolean {
  if (seen.state === "held") return !processAlive(seen.holder.pid);
  return seen.state === "unreadable" && seen.ageMs > UNREADABLE_GRACE_MS;
}

/**
 * Moves `file` away if it is still the file that was judged (same inode and same bytes: an
 * inode number can be reused by a newer lock); puts back anything else it moved. True when it
 * removed the judged file.
 */
async function removeIfSame(file: string, judged: Present): Promise<boolean> {
  const aside = `${file}.stale-${uniqueSuffix()}`;
  try {
    await rename(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
  const moved = await readLockFile(aside);
  if (moved.state === "gone" || moved.ino !== judged.ino || moved.text !== judged.text) {
    await link(aside, file).catch(() => undefined);
    await unlink(aside);
    return false;
  }
  await unlink(aside);
  return true;
}

/**
 * Takes a stale lock away. Takeovers are serialised by a guard file held for a few
 * milliseconds, and the lock is judged again under the guard: two processes that both saw one
 * stale lock cannot remove a fresh lock created in between. Does nothing when another process
 * is taking over right now.
 */
async function takeOver(file: string): Promise<void> {
  const guard = `${file}.takeover`;
  const mine: LockHolder = { pid: process.pid, owner: "takeover", at: new Date().toISOString(), nonce: randomBytes(8).toString("hex") };
  if (!(await createWhole(guard, JSON.stringify(mine)))) {
    const other = await readLockFile(guard);
    // A guard whose holder died mid-takeover would block every takeover: remove that one.
    if (other.state !== "gone" && isStale(other)) await removeIfSame(guard, other);
    return;
  }
  try {
    const seen = await readLockFile(file);
    if (seen.state !== "gone" && isStale(seen)) await removeIfSame(file, seen);
  } finally {
    await unlink(guard).catch(() => undefined);
  }
}

/**
 * Acquires `file` for this process or throws what `busy` makes of the live holder (undefined
 * when the holder's lock is still being written). Resolves with the function that releases it.
 */
export async function acquireLockFile(
  file: string,
  owner: string,
  busy: (holder: LockHolder | undefined) => KilnError,
): Promise<() => Promise<void>> {
  const mine: LockHolder = { pid: process.pid, owner, at: new Date().toISOString(), nonce: randomBytes(8).toString("hex") };
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (await createWhole(file, JSON.stringify(mine))) return () => releaseLockFile(file, mine);
    const seen = await readLockFile(file);
    if (seen.state === "gone") continue;
    if (!isStale(seen)) throw busy(seen.state === "held" ? seen.holder : undefined);
    await takeOver(file);
    await sleep(attempt < 5 ? 0 : 5);
  }
  throw new KilnError(`could not acquire ${file}: other kiln processes keep taking it`, { hint: "try again" });
}

/** Removes the lock only while it is still this holder's (never a lock someone else holds now). */
async function releaseLockFile(file: string, mine: LockHolder): Promise<void> {
  const seen = await readLockFile(file);
  if (seen.state === "held" && seen.holder.nonce === mine.nonce) await removeIfSame(file, seen);
}
