/**
 * One writer at a time changes which images and refs exist: commit, rm and prune hold
 * KILN_HOME/store.lock while they do. Without it, a prune that judged an image unreferenced
 * could delete it while a bake of the same bytes points a new ref at it. Commits hold the lock
 * for milliseconds; the others wait for it rather than fail.
 */
import path from "node:path";
import { KilnError } from "../errors.js";
import type { KilnHome } from "../home.js";
import { makePrivateDir } from "../private-fs.js";
import { acquireLockFile } from "../providers/local/lock-file.js";

class StoreBusy extends KilnError {}

const WAIT_MS = 120_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Callers in this process queue here first, so they do not poll the lock file against each other. */
const queues = new Map<string, Promise<unknown>>();

export async function withStoreLock<T>(home: KilnHome, what: string, work: () => Promise<T>): Promise<T> {
  const before = queues.get(home.root) ?? Promise.resolve();
  const mine = before.then(
    () => withLockFile(home, what, work),
    () => withLockFile(home, what, work),
  );
  queues.set(home.root, mine);
  try {
    return await mine;
  } finally {
    if (queues.get(home.root) === mine) queues.delete(home.root);
  }
}

async function withLockFile<T>(home: KilnHome, what: string, work: () => Promise<T>): Promise<T> {
  await makePrivateDir(home.root);
  const file = path.join(home.root, "store.lock");
  const deadline = Date.now() + WAIT_MS;
  let holder = "";
  for (let pause = 2; ; pause = Math.min(pause * 2, 50)) {
    try {
      const release = await acquireLockFile(file, what, (h) => new StoreBusy(h ? `${h.owner} (pid ${h.pid})` : "another kiln"));
      try {
        return await work();
      } finally {
        await release();
      }
    } catch (error) {
      if (!(error instanceof StoreBusy)) throw error;
      holder = error.message;
      if (Date.now() > deadline)
        throw new KilnError(`the image store is busy: ${holder} has held ${file} for over ${WAIT_MS / 1000}s`, {
          hint: "wait for that kiln to finish; a lock left by a kiln that died is taken over automatically",
        });
      await sleep(pause);
    }
  }
}
