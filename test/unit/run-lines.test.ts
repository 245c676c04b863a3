// The healthy and stopped lines of `kiln run` are read by scripts and the bench: what the
// formatters print, the parser reads back; every other line is not mistaken for them.
import { describe, expect, it } from "vitest";
import { healthyLine, parseRunLine, stoppedLine } from "../../src/run/run-lines.js";

describe("kiln run's healthy and stopped lines", () => {
  it("reads back the healthy line with its URL and boot-to-healthy seconds", () => {
    const line = healthyLine("hello-native:1.0.0", "http://127.0.0.1:8080/", 6423);
    expect(line).toBe("kiln: hello-native:1.0.0 is healthy at http://127.0.0.1:8080/ after 6.42s (boot to healthy)\n");
    expect(parseRunLine(line)).toEqual({
      kind: "healthy",
      ref: "hello-native:1.0.0",
      url: "http://127.0.0.1:8080/",
      bootToHealthySeconds: 6.42,
    });
  });

  it("reads back every way a VM ends, with and without the kept console", () => {
    for (const how of ["clean", "app-killed", "killed", "already-stopped"]) {
      expect(parseRunLine(stoppedLine(how, "1a2b3c4d"))).toEqual({ kind: "stopped", how });
      expect(parseRunLine(stoppedLine(how))).toEqual({ kind: "stopped", how });
    }
    expect(stoppedLine("clean", "1a2b3c4d")).toBe("kiln: VM stopped (clean); its console stays readable: kiln logs 1a2b3c4d\n");
  });

  it("ignores console lines and the other kiln lines", () => {
    for (const line of [
      "kiln-init: starting app",
      "kiln: shutting down the VM (ACPI power button; Ctrl-C again to power off)",
      "app: kiln: VM stopped (clean)",
      "kiln: hello:1 is healthy at http://x/ after soon (boot to healthy)",
    ])
      expect(parseRunLine(line)).toBeUndefined();
  });
});
