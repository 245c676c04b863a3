/** A local environment's state file: which VMs belong to which release, and the history. Written atomically, private (0600). */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { writePrivateFileAtomic } from "../../private-fs.js";
import type { HistoryEntry, ImageRef } from "../../deploy/types.js";

export interface LocalInstance {
  readonly vmId: string;
  readonly pid: number;
  readonly zone: string;
  readonly hostPort: number;
  /** HAProxy server name. */
  readonly server: string;
}

export interface LocalRelease {
  readonly id: string;
  readonly image: ImageRef;
  desired: number;
  instances: LocalInstance[];
  serving: boolean;
}

export interface LocalEnvState {
  version: 1;
  releases: LocalRelease[];
  history: HistoryEntry[];
}

export function stateFile(envDir: string): string {
  return path.join(envDir, "state.json");
}

export async function readState(envDir: string): Promise<LocalEnvState> {
  const text = await readFile(stateFile(envDir), "utf8").catch(() => "");
  if (!text) return { version: 1, releases: [], history: [] };
  return JSON.parse(text) as LocalEnvState;
}

export async function writeState(envDir: string, state: LocalEnvState): Promise<void> {
  await writePrivateFileAtomic(stateFile(envDir), `${JSON.stringify(state, null, 2)}\n`);
}
