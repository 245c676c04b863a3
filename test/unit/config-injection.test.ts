// Issue 12, hole 2: a value in kiln.yml must not become configuration of another program.
// A health check path with a newline reached haproxy.cfg raw and added a frontend that
// listened on every address; these tests pin that the path is refused at the edge (the
// schema) and, independently, that the HAProxy writer cannot be made to add a directive.
import { describe, expect, it } from "vitest";
import { SpecError } from "../../src/errors.js";
import { parseEnvironments } from "../../src/config/environments.js";
import { renderHaproxyConfig } from "../../src/providers/local/haproxy.js";

const HOSTILE_PATH = "/healthz\nfrontend evil\n  bind 0.0.0.0:9999\n  default_backend app";

function render(healthPath: string): string {
  return renderHaproxyConfig({
    port: 8000,
    socket: "/tmp/kiln/haproxy.sock",
    pidFile: "/tmp/kiln/haproxy.pid",
    healthPath,
    intervalMs: 1000,
    rise: 2,
  });
}

/** Section and directive lines a config holds (HAProxy reads one directive per line). */
function frontends(config: string): string[] {
  return config.split("\n").filter((l) => /^\s*(frontend|listen)\b/.test(l) || /^\s*bind\b/.test(l));
}

describe("HAProxy config injection through the health check path", () => {
  it("the rendered config never gains a frontend or bind line from the path", () => {
    let config: string | undefined;
    try {
      config = render(HOSTILE_PATH);
    } catch {
      config = undefined; // refusing to write is also safe
    }
    if (config !== undefined) expect(frontends(config)).toEqual(["frontend web", "  bind 127.0.0.1:8000"]);
  });

  it("a path with a newline in an environment is refused with its path", () => {
    const error = (() => {
      try {
        parseEnvironments({ dev: { healthcheck: { path: HOSTILE_PATH } } }, "shop", "/", "kiln.yml");
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(SpecError);
    expect((error as SpecError).problems).toContain("environments.dev.healthcheck.path: contains a newline");
  });
});
