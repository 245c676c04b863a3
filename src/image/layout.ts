import type { MbrPartition } from "./mbr.js";

/**
 * Where each partition lives on the disk. The point of the slot rules is that a rebake
 * which only changes the app leaves the boot and system partitions on exactly the same
 * bytes, so EBS direct-API snapshot uploads (512 KiB blocks, unchanged blocks skipped)
 * only send the app. Every offset is a multiple of 1 MiB, hence of 512 KiB, so a
 * partition never shares an EBS block with its neighbour.
 *
 * An app with installed dependencies (node_modules) gets a fourth partition for them, placed
 * between system and app on the disk: a source change resizes only the app, the last slot, so
 * the dependency partition keeps its offset and bytes. Partition numbers stay boot 1, system 2,
 * app 3 (what the init mounts), deps 4. An app without dependencies has no fourth partition,
 * so its disk is byte for byte what it was before dependency layers existed.
 */

export interface DiskLayout {
  sectorSize: 512;
  totalBytes: number;
  volumeGiB: number;
  partitions: {
    name: "boot" | "system" | "deps" | "app";
    number: 1 | 2 | 3 | 4;
    offsetBytes: number;
    sizeBytes: number;
    contentBytes: number;
    type: number;
    bootable: boolean;
  }[];
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
export const PART_TYPE_EFI = 0xef;
export const PART_TYPE_LINUX = 0x83;
/** Above ~33 MiB FAT32 has enough clusters to be valid; 64 MiB leaves room for kernels. */
const BOOT_MIN = 64 * MiB;
const SYSTEM_GRANULE = 64 * MiB;
const APP_GRANULE = 16 * MiB;
const DEPS_GRANULE = 16 * MiB;
const HEADROOM = 1.25;
const MAX_DISK = 2 ** 32 * 512;

export function planDiskLayout(sizes: { bootBytes: number; systemBytes: number; appBytes: number; depsBytes?: number }): DiskLayout {
  for (const [key, value] of Object.entries(sizes)) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new Error(`disk layout: ${key} must be a non-negative integer, got ${value}`);
    }
  }
  const bootOffset = MiB;
  const bootSize = Math.max(BOOT_MIN, roundUp(sizes.bootBytes, MiB));
  const systemOffset = roundUp(bootOffset + bootSize, MiB);
  const systemSize = slotSize(sizes.systemBytes * HEADROOM, SYSTEM_GRANULE);
  const depsOffset = roundUp(systemOffset + systemSize, MiB);
  const depsSize = sizes.depsBytes === undefined ? 0 : slotSize(sizes.depsBytes * HEADROOM + MiB, DEPS_GRANULE);
  const appOffset = roundUp(depsOffset + depsSize, MiB);
  // The extra 1 MiB keeps a tiny app from landing exactly on a granule boundary.
  const appSize = slotSize(sizes.appBytes * HEADROOM + MiB, APP_GRANULE);
  const totalBytes = roundUp(appOffset + appSize, MiB);
  if (totalBytes > MAX_DISK) {
    throw new Error(`disk layout: ${totalBytes} bytes exceeds the 2 TiB an MBR partition table can address`);
  }
  return {
    sectorSize: 512,
    totalBytes,
    volumeGiB: Math.ceil(totalBytes / GiB),
    partitions: [
      {
        name: "boot",
        number: 1,
        offsetBytes: bootOffset,
        sizeBytes: bootSize,
        contentBytes: sizes.bootBytes,
        type: PART_TYPE_EFI,
        bootable: true,
      },
      {
        name: "system",
        number: 2,
        offsetBytes: systemOffset,
        sizeBytes: systemSize,
        contentBytes: sizes.systemBytes,
        type: PART_TYPE_LINUX,
        bootable: false,
      },
      ...(sizes.depsBytes === undefined
        ? []
        : [
            {
              name: "deps" as const,
              number: 4 as const,
              offsetBytes: depsOffset,
              sizeBytes: depsSize,
              contentBytes: sizes.depsBytes,
              type: PART_TYPE_LINUX,
              bootable: false,
            },
          ]),
      {
        name: "app",
        number: 3,
        offsetBytes: appOffset,
        sizeBytes: appSize,
        contentBytes: sizes.appBytes,
        type: PART_TYPE_LINUX,
        bootable: false,
      },
    ],
  };
}

/** The layout as partition-table entries, in partition-number order. */
export function layoutToMbrPartitions(layout: DiskLayout): MbrPartition[] {
  return [...layout.partitions]
    .sort((a, b) => a.number - b.number)
    .map((p) => ({
      bootable: p.bootable,
      type: p.type,
      startLba: p.offsetBytes / layout.sectorSize,
      sectors: p.sizeBytes / layout.sectorSize,
    }));
}

/** At least one granule, so an empty filesystem still gets a real partition. */
function slotSize(bytes: number, granule: number): number {
  return Math.max(granule, roundUp(bytes, granule));
}

function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}
