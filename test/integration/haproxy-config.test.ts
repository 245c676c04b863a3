// The HAProxy writer checked by HAProxy itself: health paths the schema accepts (and a state
// directory with a space) give a config `haproxy -c` accepts, with exactly one frontend bound to
// 127.0.0.1; the hostile path from issue 12 (which `haproxy -c` accepted before, with a second
// frontend on 0.0.0.0) is refused by the writer. No VMs: seconds.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { renderHaproxyConfig } from "../../src/providers/local/haproxy.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-haproxy-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function check(healthPath: string): { ok: boolean; output: string; config: string } {
  const state = path.join(dir, "state dir");
  mkdirSync(state, { recursive: true });
  const config = renderHaproxyConfig({
    port: 18000,
    socket: path.join(state, "haproxy.sock"),
    pidFile: path.join(state, "pid"),
    healthPath,
    intervalMs: 1000,
    rise: 2,
  });
  const file = path.join(dir, "haproxy.cfg");
  writeFileSync(file, config);
  try {
    return {
      ok: true,
      output: execFileSync("haproxy", ["-c", "-f", file], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }),
      config,
    };
  } catch (error) {
    return { ok: false, output: String((error as { stderr?: string }).stderr), config };
  }
}

describe("haproxy.cfg as HAProxy reads it", () => {
  it("accepts odd health paths, one frontend on 127.0.0.1", () => {
    // "/it's" and "/a b" are refused by the schema; the writer quotes them anyway.
    for (const healthPath of ["/", "/healthz", "/v1/health?full=1&x=%20", "/a;b,c=d:e@f", "/(x)*+!~", "/it's", "/a b"]) {
      const result = check(healthPath);
      expect(result.ok, `${healthPath}: ${result.output}`).toBe(true);
      expect(result.config.split("\n").filter((l) => /^\s*(frontend|listen|bind)\b/.test(l))).toEqual([
        "frontend web",
        "  bind 127.0.0.1:18000",
      ]);
    }
  });

  it("refuses the hostile path of issue 12 instead of writing a second frontend", () => {
    const hostile = "/healthz\nfrontend evil\n  bind 0.0.0.0:19999\n  default_backend app\nbackend rest";
    expect(() => check(hostile)).toThrow(/health check path .* control character/);
  });
});
