import type { KernelBuildRecord } from "../kernel/build.js";
import type { Lock, LockEntry } from "../packages/lock.js";
import type { PackageChange } from "../packages/outdated.js";
import type { CycloneDxBom } from "../packages/sbom.js";
import type { DiskLayout } from "./layout.js";

export interface LayerRecord {
  readonly name: "kernel" | "init" | "boot" | "system" | "deps" | "app";
  readonly sha256: string;
  readonly bytes: number;
  readonly cached: boolean;
}

/** What `kiln inspect` shows and later stages (push, run) read. Everything but bakedAt is derived from the bytes' inputs. */
export interface ImageManifest {
  readonly manifestVersion: 1;
  readonly name: string;
  readonly version: string;
  readonly digest: string;
  readonly baker: string;
  readonly bakedAt: string;
  readonly cmd: readonly string[];
  readonly port: number | undefined;
  readonly env: Readonly<Record<string, string>>;
  readonly healthcheck: { readonly path: string; readonly timeoutSeconds: number };
  readonly resources: { readonly memoryMiB: number; readonly cpus: number };
  readonly kernel: {
    readonly package: string;
    readonly version: string;
    readonly release: string;
    readonly cmdline: string;
    /** Kernel modules in the initramfs (absent in images baked before this was recorded): push reads the drivers from it. */
    readonly modules?: readonly string[];
    /** Set for the kernel kiln compiles (`kernel: minimal`); package and version then name its source package. */
    readonly kind?: "minimal";
    readonly build?: KernelBuildRecord;
    /** Drivers push asks about that are built into the kernel instead of being modules. */
    readonly builtIn?: readonly string[];
  };
  readonly diskSignature: string;
  readonly layout: DiskLayout;
  /** The canonical description of the disk's bytes whose sha256 is the digest. */
  readonly diskDescriptor: string;
  readonly layers: readonly LayerRecord[];
  /** Uncompressed byte split of what the image carries. */
  readonly sizes: {
    readonly kernel: number;
    readonly init: number;
    readonly libs: number;
    readonly runtime: number;
    readonly app: number;
    readonly rawDisk: number;
    readonly allocated: number;
  };
  readonly packages: readonly LockEntry[];
  readonly files: readonly { path: string; bytes: number; kind: string }[];
  /** kiln.lock as this bake wrote it (absent in images baked before locks were embedded). */
  readonly lock?: Lock;
  /** CycloneDX 1.5 SBOM: base packages and the app's dependencies (also images/<digest>/sbom.json). */
  readonly sbom?: CycloneDxBom;
  /** What outdated and rebake resolve against: the kernel metapackage and the runtime's version range. */
  readonly baseInputs?: { readonly kernelPackage?: string; readonly kernel?: "minimal"; readonly nodeRange?: string };
  /** Set on a rebake: the image whose app layer was reused, and the base packages that changed. */
  readonly rebake?: RebakeRecord;
}

export interface RebakeRecord {
  readonly from: { readonly ref: string; readonly digest: string };
  /** sha256 of the app partition's content: the same bytes as in `from`. */
  readonly appLayerSha256: string;
  readonly changes: readonly PackageChange[];
}
