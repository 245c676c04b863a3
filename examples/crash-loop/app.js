// crash-loop: fails on purpose, right after it starts. The init restarts it with backoff; after
// restarts.maxQuickExits quick exits in a row it powers the VM off (the console shows each step).
// /tmp is a tmpfs that lives as long as the VM, so the run count survives restarts.
const fs = require("node:fs");

const counter = "/tmp/crash-loop-runs";
let runs = 1;
try {
  runs = Number(fs.readFileSync(counter, "utf8")) + 1;
} catch {
  // first run
}
fs.writeFileSync(counter, String(runs));
console.log(`crash-loop: run ${runs}, cannot reach the database, exiting`);
console.error(`crash-loop: run ${runs} failed: ECONNREFUSED (exit status 1)`);
process.exitCode = 1;
