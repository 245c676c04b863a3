import { KilnError } from "../errors.js";
import { normalizeModuleName, type ModuleInfo } from "./modinfo.js";

/**
 * Decides which kernel modules go into an image and in what order its init loads them.
 * The image carries no modprobe and no depmod output, so the load order and the alias
 * patterns are precomputed here and written as plain tables the init script can read.
 */

export interface ModuleLoadPlan {
  /** Dependencies before dependents; ties broken alphabetically, so the order is reproducible. */
  order: string[];
  /** Wanted or depended-on modules that are not available, sorted. */
  missing: string[];
}

export function planModuleLoad(available: ReadonlyMap<string, ModuleInfo>, wanted: readonly string[]): ModuleLoadPlan {
  const index = indexByName(available);
  const { prerequisites, missing } = collectPrerequisites(index, wanted.map(normalizeModuleName));
  return { order: orderByPrerequisites(prerequisites), missing: [...missing].sort(compareStrings) };
}

/** `alias<TAB>pattern<TAB>module` lines; patterns are shell globs matched against device modaliases. */
export function renderAliasTable(modules: readonly ModuleInfo[]): string {
  const lines = new Set<string>();
  for (const module of modules) {
    for (const alias of module.aliases) {
      // A tab or newline would split the record the init script reads.
      if (/[\t\n]/.test(alias))
        throw new KilnError(`kernel module ${module.name} has an alias containing a tab or newline: ${JSON.stringify(alias)}`);
      lines.add(`alias\t${alias}\t${normalizeModuleName(module.name)}`);
    }
  }
  return joinLines([...lines].sort(compareStrings));
}

/**
 * `module<TAB>dep1 dep2 … module`: everything to load, in order, to get `module` working.
 * Dependencies that are not available are left out; planModuleLoad is where they get
 * reported, and the table only describes what the image can actually load.
 */
export function renderDepTable(available: ReadonlyMap<string, ModuleInfo>, modules: readonly string[]): string {
  const names = [...new Set(modules.map(normalizeModuleName))].sort(compareStrings);
  const index = indexByName(available);
  const absent = names.filter((name) => !index.has(name));
  if (absent.length > 0) {
    throw new KilnError(
      `cannot write load order for kernel module${absent.length === 1 ? "" : "s"} that ${absent.length === 1 ? "is" : "are"} not available: ${absent.join(", ")}`,
    );
  }
  return joinLines(names.map((name) => `${name}\t${planModuleLoad(available, [name]).order.join(" ")}`));
}

/** Callers may key modules by file name or by `name=`; both spellings must find them. */
function indexByName(available: ReadonlyMap<string, ModuleInfo>): Map<string, ModuleInfo> {
  const index = new Map<string, ModuleInfo>();
  for (const [key, info] of available) index.set(normalizeModuleName(key), info);
  return index;
}

/** Walks `depends` and existing pre-softdeps from the wanted modules. */
function collectPrerequisites(
  index: ReadonlyMap<string, ModuleInfo>,
  wanted: readonly string[],
): { prerequisites: Map<string, string[]>; missing: Set<string> } {
  const prerequisites = new Map<string, string[]>();
  const missing = new Set<string>();
  const pending = [...wanted];
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (prerequisites.has(name) || missing.has(name)) continue;
    const info = index.get(name);
    if (info === undefined) {
      missing.add(name);
      continue;
    }
    const hard = info.depends.map(normalizeModuleName);
    const soft = info.softdepsPre.map(normalizeModuleName).filter((dep) => index.has(dep));
    const direct = [...new Set([...hard, ...soft])];
    prerequisites.set(
      name,
      direct.filter((dep) => index.has(dep)),
    );
    pending.push(...direct);
  }
  return { prerequisites, missing };
}

/**
 * Kahn's algorithm, always taking the alphabetically first module whose prerequisites are
 * all placed. Modules left over sit on or behind a cycle.
 */
function orderByPrerequisites(prerequisites: ReadonlyMap<string, readonly string[]>): string[] {
  const unplaced = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const [name, deps] of prerequisites) {
    unplaced.set(name, deps.length);
    for (const dep of deps) dependents.set(dep, [...(dependents.get(dep) ?? []), name]);
  }
  const ready = [...unplaced]
    .filter(([, count]) => count === 0)
    .map(([name]) => name)
    .sort(compareStrings);
  const order: string[] = [];
  for (let name = ready.shift(); name !== undefined; name = ready.shift()) {
    order.push(name);
    unplaced.delete(name);
    for (const dependent of dependents.get(name) ?? []) {
      const remaining = (unplaced.get(dependent) ?? 0) - 1;
      unplaced.set(dependent, remaining);
      if (remaining === 0) insertSorted(ready, dependent);
    }
  }
  if (unplaced.size > 0) throw dependencyCycleError(prerequisites, new Set(unplaced.keys()));
  return order;
}

/**
 * Every module left unplaced still waits on another unplaced one, so following those
 * waits from any of them must come back around; that loop is what the message names.
 */
function dependencyCycleError(prerequisites: ReadonlyMap<string, readonly string[]>, unplaced: ReadonlySet<string>): KilnError {
  const path: string[] = [];
  let name = [...unplaced].sort(compareStrings)[0];
  while (name !== undefined && !path.includes(name)) {
    path.push(name);
    name = (prerequisites.get(name) ?? []).filter((dep) => unplaced.has(dep)).sort(compareStrings)[0];
  }
  const cycle = name === undefined ? path : [...path.slice(path.indexOf(name)), name];
  return new KilnError(`kernel modules depend on each other in a cycle: ${cycle.join(" -> ")}`, {
    hint: "the module set's depends= or softdep= entries are inconsistent; check that all modules come from the same kernel build",
  });
}

function insertSorted(sorted: string[], value: string): void {
  const at = sorted.findIndex((existing) => compareStrings(existing, value) > 0);
  sorted.splice(at === -1 ? sorted.length : at, 0, value);
}

function joinLines(lines: readonly string[]): string {
  return lines.map((line) => `${line}\n`).join("");
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
