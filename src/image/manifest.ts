import type { LockEntry } from "../packages/lock.js";
import type { DiskLayout } from "./layout.js";

export interface LayerRecord {
  readonly name: "kernel" | "init" | "boot" | "system" | "app";
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
  readonly kernel: { readonly package: string; readonly version: string; readonly release: string; readonly cmdline: string };
  readonly diskSignature: string;
  readonly layout: DiskLayout;
  /** The canonical description of the disk's bytes whose sha256 is the digest. */
  readonly diskDescriptor: string;
  readonly layers: readonly LayerRecord[];
  /** Uncompressed byte split of what the image carries. */
  readonly sizes: { readonly kernel: number; readonly init: number; readonly libs: number; readonly runtime: number; readonly app: number; readonly rawDisk: number; readonly allocated: number };
  readonly packages: readonly LockEntry[];
  readonly files: readonly { path: string; bytes: number; kind: string }[];
}
