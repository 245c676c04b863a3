/**
 * Kernel feature fragments (kernel-configs/*.config) and the check of a kernel's
 * /boot/config-* against them. Pure: text in, problems and module names out.
 */
export interface KernelRequirement {
  readonly option: string;
  /** "y": must be built in; "m": built in or a module. */
  readonly need: "y" | "m";
  readonly modules: readonly string[];
}

export function parseFragment(text: string): KernelRequirement[] {
  const out: KernelRequirement[] = [];
  for (const raw of text.split("\n")) {
    const [setting, comment = ""] = raw.split("#", 2) as [string, string?];
    const m = /^\s*(CONFIG_[A-Z0-9_]+)=([ym])\s*$/.exec(setting);
    if (!m) continue;
    const modules = /module:\s*(.+)$/.exec(comment)?.[1]?.trim().split(/\s+/) ?? [];
    out.push({ option: m[1]!, need: m[2] as "y" | "m", modules });
  }
  return out;
}

export function parseKernelConfig(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m) values.set(m[1]!, m[2]!);
  }
  return values;
}

export interface KernelCheck {
  readonly missing: readonly string[];
  /** Modules to put in the initramfs: the features this kernel has as =m. */
  readonly modules: readonly string[];
}

export function checkKernelConfig(requirements: readonly KernelRequirement[], config: ReadonlyMap<string, string>): KernelCheck {
  const missing: string[] = [];
  const modules = new Set<string>();
  for (const req of requirements) {
    const value = config.get(req.option);
    if (value === "y") continue;
    if (value === "m" && req.need === "m") {
      for (const m of req.modules) modules.add(m);
      continue;
    }
    missing.push(
      value === "m"
        ? `${req.option}=y (the kernel has it as a module, but it must be built in)`
        : `${req.option}=${req.need === "y" ? "y" : "y or m"} (not set)`,
    );
  }
  return { missing, modules: [...modules].sort() };
}
