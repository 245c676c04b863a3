/** The frozen result of reading kiln.yml, package.json and flags: everything a bake needs to know. */
export interface Spec {
  /** Absolute path of the app directory (or of the directory holding a lone executable). */
  readonly appDir: string;
  /** Set when the user pointed at a single executable rather than a directory. */
  readonly appFile: string | undefined;
  readonly name: string;
  readonly version: string;
  readonly baker: string;
  /** argv of the app; relative program paths resolve against /app. Bakers may fill it in. */
  readonly cmd: readonly string[] | undefined;
  readonly port: number | undefined;
  readonly env: Readonly<Record<string, string>>;
  readonly healthcheck: { readonly path: string; readonly timeoutSeconds: number };
  /** debian: a Debian kernel image package, drivers as modules; minimal: the kernel kiln builds (kernel-configs/minimal*.config). */
  readonly kernel: { readonly kind: "debian"; readonly package: string } | { readonly kind: "minimal" };
  readonly resources: { readonly memoryMiB: number; readonly cpus: number };
  /** Extra Debian packages whose shared libraries the app may need. */
  readonly packages: readonly string[];
  readonly stopTimeoutSeconds: number;
  /**
   * Crash loop policy: a run shorter than windowSeconds is a quick exit; after maxQuickExits in
   * a row the instance powers off (so a load balancer / auto scaling group replaces it), or with
   * onCrashLoop "restart" keeps restarting with backoff. Unset means "poweroff".
   */
  readonly restarts: { readonly maxQuickExits: number; readonly windowSeconds: number; readonly onCrashLoop?: CrashLoopAction };
  /** Node.js version range (node baker). */
  readonly node: { readonly version: string | undefined };
  /** The app's seccomp deny-list (kiln-exec); `seccomp: off` in kiln.yml turns it off. */
  readonly seccomp: boolean;
}

export const CRASH_LOOP_ACTIONS = ["poweroff", "restart"] as const;
export type CrashLoopAction = (typeof CRASH_LOOP_ACTIONS)[number];

/** Flags from the command line that override kiln.yml. */
export interface SpecOverrides {
  name?: string;
  version?: string;
  cmd?: string;
  port?: string;
  baker?: string;
  kernel?: string;
}

export const DEFAULTS = {
  healthPath: "/",
  healthTimeoutSeconds: 120,
  kernelPackage: "linux-image-cloud-amd64",
  memoryMiB: 512,
  cpus: 1,
  stopTimeoutSeconds: 10,
  maxQuickExits: 5,
  quickExitWindowSeconds: 30,
  seccomp: true,
} as const;
