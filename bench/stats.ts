/** Pure helpers of the boot bench: medians, the smallest passing memory size, ratios and the table. */

export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const mid = Math.floor(finite.length / 2);
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
}

/**
 * The smallest value in [low, high], to a multiple of `step` above `low`, for which `passes` is
 * true, assuming it passes for every value above the smallest (more memory never hurts a boot).
 * `high` is known to pass (the measured boots ran there) and is not probed again; undefined when
 * `low` is not below `high`. Each probe is one real boot, so the number of probes is what costs.
 */
export async function smallestPassing(
  low: number,
  high: number,
  step: number,
  passes: (value: number) => Promise<boolean>,
): Promise<{ value: number; probes: { value: number; passed: boolean }[] }> {
  if (!(step > 0) || !(low < high)) throw new Error(`smallestPassing: need step > 0 and low < high (got ${low}, ${high}, ${step})`);
  const probes: { value: number; passed: boolean }[] = [];
  const probe = async (value: number) => {
    const passed = await passes(value);
    probes.push({ value, passed });
    return passed;
  };
  if (await probe(low)) return { value: low, probes };
  // Invariant: `fails` fails, `ok` passes.
  let fails = low;
  let ok = high;
  while (ok - fails > step) {
    const mid = fails + Math.max(step, Math.floor((ok - fails) / 2 / step) * step);
    if (mid >= ok) break;
    if (await probe(mid)) ok = mid;
    else fails = mid;
  }
  return { value: ok, probes };
}

/** "12.3×" for how many times `usual` is larger than `kiln` (both positive), "–" otherwise. */
export function formatRatio(usual: number | undefined, kiln: number | undefined): string {
  if (usual === undefined || kiln === undefined || !(usual > 0) || !(kiln > 0)) return "–";
  const r = usual / kiln;
  return `${r >= 10 ? r.toFixed(0) : r.toFixed(1)}×`;
}

/** A fixed-width table: first column left-aligned, the others right-aligned. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** Boot by boot alternation: every image once per round, in the same order (A B C A B C …), so machine noise hits all. */
export function alternatingOrder<T>(items: readonly T[], rounds: number): T[] {
  const order: T[] = [];
  for (let r = 0; r < rounds; r++) order.push(...items);
  return order;
}

/** The line of a refused command's stderr that says why (commander prints "error: unknown option …" above its help). */
export function refusalReason(stderrTail: string): string {
  const lines = stderrTail
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  const reason = lines.find((l) => /error|unknown|refus|not supported|invalid/i.test(l));
  if (reason) return reason;
  // The error line can be above the kept tail of a long usage text.
  if (lines.some((l) => /^-h, --help\b/.test(l))) return "kiln printed its usage: the option is unknown to this kiln";
  return lines[lines.length - 1] ?? "no reason given";
}
