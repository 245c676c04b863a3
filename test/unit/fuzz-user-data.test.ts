// Property tests of the KEY=VALUE lines kiln writes as user-data (seed drive, EC2) and reads
// from `kiln run -e` (issue 12): parseEnvFlags never throws anything but an InputError; what it
// accepts renders to exactly one user-data line per variable; and those lines read back
// through the same parser give the same variables (render → parse is the identity).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { parseEnvFlags, renderUserData } from "../../src/run/seed.js";
import { fuzzRuns } from "./helpers/fuzz-runs.js";

const RUNS = fuzzRuns();
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Names: mostly valid, sometimes KILN_*, a digit first, a dash, '=' or a control character. */
const name = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,12}$/) },
  { weight: 1, arbitrary: fc.constantFrom("KILN_ENV", "1BAD", "A-B", "A\nB", "", "A B", "Ä") },
);
/** Values: anything, with the characters that end or split a line mixed in often. */
const value = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  {
    weight: 2,
    arbitrary: fc
      .array(fc.constantFrom("a", "=", "#", " ", "'", '"', "\\", "\n", "\r", "\t", "\0", "\u2028", "é", "$(x)"), { maxLength: 12 })
      .map((a) => a.join("")),
  },
);

/** The user-data lines back through kiln's KEY=VALUE parser: the comment line is not a variable. */
function readBack(userData: string): Record<string, string> {
  const lines = userData.split("\n");
  expect(lines.at(-1)).toBe("");
  return parseEnvFlags(lines.slice(0, -1).filter((l) => !l.startsWith("#")));
}

describe("property: user-data KEY=VALUE lines", () => {
  it("parseEnvFlags throws only InputError; what it accepts renders one line per variable and reads back the same", () => {
    let accepted = 0;
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 6 }), (pairs) => {
        let env: Record<string, string>;
        try {
          env = parseEnvFlags(pairs.map(([k, v]) => `${k}=${v}`));
        } catch (error) {
          expect(error).toBeInstanceOf(InputError);
          return;
        }
        accepted++;
        const text = renderUserData(env);
        expect(text.split("\n")).toHaveLength(Object.keys(env).length + 2);
        expect(readBack(text)).toEqual(env);
        for (const [k, v] of Object.entries(env)) {
          expect(k).toMatch(NAME);
          expect(k.startsWith("KILN_")).toBe(false);
          expect(v).not.toMatch(/[\u0000-\u001f\u007f]/);
        }
      }),
      { numRuns: RUNS },
    );
    expect(accepted).toBeGreaterThan(0);
  });

  it("renderUserData refuses what cannot be one line, and otherwise round-trips", () => {
    fc.assert(
      fc.property(fc.dictionary(name, value, { maxKeys: 5 }), (env) => {
        let text: string;
        try {
          text = renderUserData(env);
        } catch (error) {
          expect(error).toBeInstanceOf(InputError);
          expect(Object.entries(env).some(([k, v]) => !NAME.test(k) || /[\u0000-\u001f\u007f]/.test(v))).toBe(true);
          return;
        }
        expect(text.split("\n")).toHaveLength(Object.keys(env).length + 2);
        // KILN_* names are kiln's own (KILN_ENV at boot): the writer carries them, -e does not take them.
        const own = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith("KILN_")));
        expect(readBack(renderUserData(own))).toEqual(own);
      }),
      { numRuns: RUNS },
    );
  });
});
