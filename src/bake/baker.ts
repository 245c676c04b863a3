/**
 * A baker knows one kind of app (Node.js, a native executable, …): how to recognise it,
 * which runtime goes into the system layer, and how to stage the app layer. Bakers live in
 * bakers/<name>/index.ts and are found by folder name, so adding one does not touch src/.
 */
import type { Spec } from "../config/types.js";
import type { LockEntry } from "../packages/lock.js";
import type { BakeContext } from "./context.js";

export interface AppSource {
  readonly dir: string;
  /** Set when the user gave a single file rather than a directory. */
  readonly file: string | undefined;
}

/** What a baker can tell from the app's files alone, before kiln.yml and flags apply. */
export interface Detection {
  readonly name?: string;
  readonly version?: string;
  readonly cmd?: readonly string[];
  readonly port?: number;
  readonly nodeVersion?: string;
  /** Problems found while detecting (e.g. an unusable scripts.start), reported with the spec's. */
  readonly problems?: readonly string[];
}

export interface RuntimeFile {
  /** Absolute path inside the image's root, e.g. /usr/bin/node. */
  readonly dest: string;
  readonly source: string;
  readonly mode: number;
}

/**
 * A directory copied whole into the image (a JRE, a language's standard library): files, dirs
 * and symlinks, with normalised modes. Its ELF files get their shared-library closure like
 * runtime files do; libraries the tree ships itself stay in the tree.
 */
export interface RuntimeTree {
  /** Absolute directory inside the image's root, e.g. /usr/lib/jvm/kiln-jre. */
  readonly dest: string;
  /** Directory on the build host whose contents go there (immutable while the bake runs). */
  readonly source: string;
  /**
   * Image directories where the tree's own libraries are found although no RPATH names them,
   * because the program loads them before anything asks (the JVM launcher dlopens
   * lib/server/libjvm.so, which libjava.so then needs by soname).
   */
  readonly libraryPath?: readonly string[];
}

export interface Runtime {
  /** Stable identity of the runtime's inputs, part of the system layer's cache key. */
  readonly key: string;
  readonly files: readonly RuntimeFile[];
  /** Whole directories (hundreds of files) that go into the system layer with the files. */
  readonly trees?: readonly RuntimeTree[];
  readonly packages: readonly LockEntry[];
  /** PATH inside the image, for resolving the command's program. */
  readonly path: readonly string[];
  /** Headers for native extensions built against this runtime (Node: include/node). */
  readonly headersDir?: string;
}

/**
 * Installed dependencies as their own read-only layer, mounted over an empty directory of the app
 * layer. `hostDir` is immutable once returned (a cache entry) and is named like the last part of
 * `imageDir`, so scanners see the same relative paths (node_modules/…) as in the image.
 */
export interface StagedDeps {
  /** Where the layer is mounted in the image, e.g. /app/node_modules. */
  readonly imageDir: string;
  readonly hostDir: string;
  /** Identity of everything that decided the installed tree; the layer's cache key. */
  readonly key: string;
  /** True when the install was reused from the cache (npm did not run). */
  readonly cached: boolean;
}

export interface Baker {
  readonly name: string;
  /** Returns undefined when the app is not of this baker's kind. */
  detect(source: AppSource): Promise<Detection | undefined>;
  /** Fetches the runtime (pinned by the lock) for the system layer. */
  prepareRuntime(spec: Spec, ctx: BakeContext): Promise<Runtime>;
  /**
   * Copies the app into `dest`, which becomes /app. Its production dependencies either go into
   * `dest` too, or are returned as a dependency layer (own partition, cached by its key).
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: bakers without a dependency layer just return.
  stageApp(spec: Spec, ctx: BakeContext, dest: string, runtime: Runtime): Promise<StagedDeps | void>;
  /**
   * Problems with the start file the command names (a script or jar that does not exist), found
   * from the app's files alone; the bake refuses them before fetching anything.
   */
  entryProblems?(spec: Spec): Promise<readonly string[]>;
  /** Extra inputs that decide the app layer besides its files (e.g. the Node version for addons). */
  appKey?(spec: Spec, runtime: Runtime): string;
}
