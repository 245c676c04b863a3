import { BaseSequencer, type WorkspaceSpec } from "vitest/node";
import { defineConfig } from "vitest/config";

/** Files that wait for the minimal kernel, which scripts/test-lanes.sh compiles beside the others: last. */
const LAST = /boot-minimal-kernel\.test\.ts$/;

class MinimalKernelLast extends BaseSequencer {
  override async sort(files: WorkspaceSpec[]): Promise<WorkspaceSpec[]> {
    const sorted = await super.sort(files);
    return [...sorted.filter((f) => !LAST.test(f.moduleId)), ...sorted.filter((f) => LAST.test(f.moduleId))];
  }
}

// Integration tests boot real VMs under TCG on 2 cores: run files one at a time so boots do
// not starve each other, with timeouts sized for cold bakes (package downloads) and boots.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 600_000,
    reporters: ["default"],
    sequence: { sequencer: MinimalKernelLast },
  },
});
