import { defineConfig } from "vitest/config";

// Integration tests boot real VMs under TCG on 2 cores: run files one at a time so boots do
// not starve each other, with timeouts sized for cold bakes (package downloads) and boots.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 600_000,
    reporters: ["default"],
  },
});
