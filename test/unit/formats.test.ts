// The formats table and the byte-level work around qemu-img: format parsing (one table, every
// unknown name reported at once), digest-derived ids that make VDI/VMDK/VHD output
// reproducible (checked on headers recorded from qemu-img 7.2), the OVF descriptor against
// the DMTF envelope structure and VirtualBox's reader, the OVA manifest, and sparse copies.
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile, open } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { inflateRawSync } from "node:zlib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import {
  copySparse,
  derivedUuid,
  DISK_FORMATS,
  FIXED_EPOCH,
  FORMATS,
  formatUuid,
  normalizeVhdFooter,
  parseFormats,
  parseVhdFooter,
  readVdiUuid,
  setVdiUuids,
  vhdChecksum,
  vmdkDescriptorRange,
  withContentId,
} from "../../src/image/formats.js";
import { renderManifest, renderOvf, VMDK_STREAM_FORMAT, type OvfInput } from "../../src/image/ova.js";
import { checkOvf, parseXml, virtualBoxNicType } from "../fixtures/vbox/ovf-check.js";

const DIGEST = `sha256:${"cd".repeat(32)}`;

// ---- recorded from `qemu-img convert` (qemu 7.2) of a 1 MiB raw disk ---------------------------

function padded(hex: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  Buffer.from(hex, "hex").copy(out);
  return out;
}
/** -O vpc -o subformat=fixed,force_size=on: the 512-byte footer at the end of the file. */
const QEMU_VHD_FOOTER = padded(
  "636f6e65637469780000000200010000ffffffffffffffff3295139b71656d32000500035769326b00000000001000000000000000100000ffff10ff00000002ffffe631f180216bb9b04a6f90471d35b66e2e5e",
  512,
);
/** -O vmdk -o subformat=streamOptimized: SparseExtentHeader, then the embedded descriptor at sector 1. */
const QEMU_VMDK_HEADER = padded(
  "4b444d56030000000300030000080000000000008000000000000000010000000000000014000000000000000002000015000000000000001a000000000000008000000000000000000a200d0a01",
  512,
);
const QEMU_VMDK_DESCRIPTOR =
  '# Disk DescriptorFile\nversion=1\nCID=9e4b282e\nparentCID=ffffffff\ncreateType="streamOptimized"\n\n# Extent description\nRW 2048 SPARSE "t.vmdk"\n\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = "4"\nddb.geometry.cylinders = "2"\nddb.geometry.heads = "16"\nddb.geometry.sectors = "63"\nddb.adapterType = "ide"\nddb.toolsVersion = "2147483647"\n';
/** -O vdi: the 512-byte header (raw-deflated here). */
const QEMU_VDI_HEADER = inflateRawSync(
  Buffer.from(
    "s7GxUQh09Q1VCPNVCMssKilNzFFwySzOVvDMTUxPVbCzs+NiwAfqBW7tY2RgZGhgZACSowAMmBgYGFiwiIGBAArNCMWHXs/2PTL1vN/0Wma+Y/NesMukzrj7bc4L/+X/uQzXN0w6RCunAgA=",
    "base64",
  ),
);

describe("the formats table", () => {
  it("names every format once, with qemu's driver name where QEMU can boot it", () => {
    expect(DISK_FORMATS).toEqual(["raw", "vdi", "vmdk", "vmdk-stream", "vhd", "qcow2", "ova"]);
    for (const f of DISK_FORMATS) expect(FORMATS[f].name).toBe(f);
    expect(Object.fromEntries(DISK_FORMATS.map((f) => [f, FORMATS[f].qemuFormat]))).toEqual({
      raw: "raw",
      vdi: "vdi",
      vmdk: "vmdk",
      "vmdk-stream": "vmdk",
      vhd: "vpc",
      qcow2: "qcow2",
      ova: undefined,
    });
    expect(FORMATS.vhd.summary).toMatch(/fixed VHD, 1 MiB aligned/);
    expect(FORMATS["vmdk-stream"].make).toMatchObject({ kind: "qemu-img", options: expect.stringContaining("subformat=streamOptimized") });
    expect(FORMATS.vmdk.make).toMatchObject({ kind: "qemu-img", options: expect.stringContaining("subformat=monolithicSparse") });
    expect(FORMATS.vhd.make).toMatchObject({ kind: "qemu-img", options: "subformat=fixed,force_size=on" });
  });

  it("parses comma lists and repeated flags, case-insensitively, without duplicates", () => {
    expect(parseFormats("vdi,vmdk")).toEqual(["vdi", "vmdk"]);
    expect(parseFormats(["VDI", "vhd,vdi", " qcow2 "])).toEqual(["vdi", "vhd", "qcow2"]);
  });

  it("reports every unknown format at once and lists the known ones, before any work", () => {
    const error = (() => {
      try {
        parseFormats("vdi,vhdx,img");
      } catch (e) {
        return e as InputError;
      }
      throw new Error("expected an error");
    })();
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toBe("unknown disk formats 'vhdx', 'img'; kiln knows: raw, vdi, vmdk, vmdk-stream, vhd, qcow2, ova");
    expect(error.hint).toMatch(/vhd\s+Hyper-V, Azure/);
    expect(error.exitCode).toBe(2);
    expect(() => parseFormats(",")).toThrow(/no disk format given/);
  });
});

describe("reproducible conversions", () => {
  it("derives RFC 4122-shaped UUIDs from the digest, stable and distinct per purpose", () => {
    const a = derivedUuid(DIGEST, "vdi-image");
    expect(formatUuid(a)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(derivedUuid(DIGEST, "vdi-image").equals(a)).toBe(true);
    expect(derivedUuid(DIGEST, "vhd").equals(a)).toBe(false);
    expect(derivedUuid(`sha256:${"ce".repeat(32)}`, "vdi-image").equals(a)).toBe(false);
  });

  it("reads qemu's fixed VHD footer and pins its timestamp and UUID with a valid checksum", () => {
    const original = parseVhdFooter(QEMU_VHD_FOOTER);
    expect(original).toMatchObject({
      cookie: "conectix",
      version: 0x00010000,
      dataOffset: 0xffffffffffffffffn,
      diskType: "fixed",
      originalSize: 1048576,
      currentSize: 1048576,
      checksumValid: true,
      creatorApp: "qem2",
    });
    const pinned = parseVhdFooter(normalizeVhdFooter(QEMU_VHD_FOOTER, DIGEST));
    expect(pinned).toMatchObject({
      diskType: "fixed",
      currentSize: 1048576,
      timestamp: FIXED_EPOCH,
      checksumValid: true,
      uuid: formatUuid(derivedUuid(DIGEST, "vhd")),
    });
    expect(pinned.currentSize % (1024 * 1024)).toBe(0);
    expect(normalizeVhdFooter(QEMU_VHD_FOOTER, DIGEST).equals(normalizeVhdFooter(QEMU_VHD_FOOTER, DIGEST))).toBe(true);
    const corrupt = Buffer.from(QEMU_VHD_FOOTER);
    corrupt[50]! ^= 1;
    expect(parseVhdFooter(corrupt).checksumValid).toBe(false);
    expect(vhdChecksum(QEMU_VHD_FOOTER)).toBe(QEMU_VHD_FOOTER.readUInt32BE(64));
    expect(() => normalizeVhdFooter(Buffer.alloc(512), DIGEST)).toThrow(/conectix/);
  });

  it("finds a sparse VMDK's embedded descriptor and replaces only its content id, also when qemu wrote it unpadded", () => {
    expect(vmdkDescriptorRange(QEMU_VMDK_HEADER)).toEqual({ offset: 512, length: 10240 });
    const area = padded(Buffer.from(QEMU_VMDK_DESCRIPTOR, "latin1").toString("hex"), 10240);
    const fixed = withContentId(area, "0123abcd");
    expect(fixed.length).toBe(10240);
    expect(fixed.toString("latin1").replace(/\0+$/, "")).toBe(QEMU_VMDK_DESCRIPTOR.replace("CID=9e4b282e", "CID=0123abcd"));
    // qemu prints the CID with %x: a random id with leading zeros is shorter than 8 digits.
    const short = padded(Buffer.from(QEMU_VMDK_DESCRIPTOR.replace("CID=9e4b282e", "CID=4b282e"), "latin1").toString("hex"), 10240);
    expect(withContentId(short, "0123abcd").equals(fixed)).toBe(true);
    expect(() => withContentId(Buffer.from("version=1\n"), "0123abcd")).toThrow(/no CID line/);
    expect(() => vmdkDescriptorRange(Buffer.alloc(512))).toThrow(/KDMV/);
  });

  describe("files", () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), "kiln-formats-"));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it("sets a VDI's image and modification UUIDs in qemu's header, and nothing else", async () => {
      const file = path.join(dir, "disk.vdi");
      await writeFile(file, QEMU_VDI_HEADER);
      expect(await readVdiUuid(file)).toBe("c2eb9b4d-c495-cf4e-977d-030ec69ee807");
      await setVdiUuids(file, derivedUuid(DIGEST, "vdi-image"), derivedUuid(DIGEST, "vdi-modify"));
      const after = await readFile(file);
      expect(await readVdiUuid(file)).toBe(formatUuid(derivedUuid(DIGEST, "vdi-image")));
      const changed = [...after].flatMap((b, i) => (b === QEMU_VDI_HEADER[i] ? [] : [i]));
      expect(Math.min(...changed)).toBeGreaterThanOrEqual(0x188);
      expect(Math.max(...changed)).toBeLessThan(0x1a8);
      await writeFile(path.join(dir, "not.vdi"), Buffer.alloc(512));
      await expect(setVdiUuids(path.join(dir, "not.vdi"), Buffer.alloc(16), Buffer.alloc(16))).rejects.toThrow(/not a VDI/);
    });

    it("copies sparsely and atomically: same bytes, holes for zero blocks, no temporary left", async () => {
      const src = path.join(dir, "src.raw");
      await writeFile(src, "");
      await truncate(src, 32 * 1024 * 1024);
      const fh = await open(src, "r+");
      await fh.write(Buffer.from("boot"), 0, 4, 0);
      await fh.write(Buffer.alloc(70_000, 7), 0, 70_000, 20 * 1024 * 1024);
      await fh.write(Buffer.from("end"), 0, 3, 32 * 1024 * 1024 - 3);
      await fh.close();
      const dest = path.join(dir, "out", "..", "copy.raw");
      await copySparse(src, dest);
      expect((await readFile(dest)).equals(await readFile(src))).toBe(true);
      expect((await stat(dest)).size).toBe(32 * 1024 * 1024);
      expect((await stat(dest)).blocks * 512).toBeLessThan(1024 * 1024);
      expect(await readdir(dir)).toEqual(["copy.raw", "src.raw"]);
    });
  });
});

describe("OVF descriptor", () => {
  const input: OvfInput = {
    systemId: "shop-1.4.0",
    ref: "shop:1.4.0",
    digest: DIGEST,
    diskHref: "shop-1.4.0-disk1.vmdk",
    diskFileBytes: 58004992,
    capacityBytes: 219152384,
    memoryMiB: 512,
    cpus: 2,
    target: "virtualbox",
  };

  it("is well-formed, namespaced XML in the OVF 1.0 envelope structure that VirtualBox's reader accepts", () => {
    const { problems, facts } = checkOvf(renderOvf(input));
    expect(problems).toEqual([]);
    expect(facts.files).toEqual([{ id: "file1", href: "shop-1.4.0-disk1.vmdk", size: 58004992 }]);
    expect(facts.disks).toEqual([{ id: "vmdisk1", capacity: 219152384, format: VMDK_STREAM_FORMAT, fileRef: "file1" }]);
    expect(facts.virtualSystemType).toBe("virtualbox-2.2");
    const byType = (t: string) => facts.items.find((i) => i.get("ResourceType") === t)!;
    expect(byType("3").get("VirtualQuantity")).toBe("2");
    expect([byType("4").get("VirtualQuantity"), byType("4").get("AllocationUnits")]).toEqual(["512", "byte * 2^20"]);
    // The hardware the image's kernel drives: ata_piix and virtio-net (no AHCI, no e1000).
    expect(byType("5").get("ResourceSubType")).toBe("PIIX4");
    expect(virtualBoxNicType(byType("10").get("ResourceSubType"))).toBe("virtio");
    expect(byType("17").get("Parent")).toBe(byType("5").get("InstanceID"));
  });

  it("for VMware: vmx hardware family, VMXNET3, still valid", () => {
    const xml = renderOvf({ ...input, target: "vmware" });
    const { problems, facts } = checkOvf(xml);
    expect(problems).toEqual([]);
    expect(facts.virtualSystemType).toBe("vmx-13");
    expect(facts.items.find((i) => i.get("ResourceType") === "10")!.get("ResourceSubType")).toBe("VmxNet3");
    expect(
      parseXml(xml)
        .children.find((c) => c.local === "VirtualSystem")!
        .children.find((c) => c.local === "OperatingSystemSection")!.attrs["{http://www.vmware.com/schema/ovf}osType"],
    ).toBe("otherLinux64Guest");
  });

  it("escapes what it embeds", () => {
    const xml = renderOvf({ ...input, systemId: "a&b<c>", ref: `q"uote:1` });
    expect(checkOvf(xml).problems).toEqual([]);
    expect(parseXml(xml).children.find((c) => c.local === "VirtualSystem")!.attrs["{http://schemas.dmtf.org/ovf/envelope/1}id"]).toBe(
      "a&b<c>",
    );
  });

  it("the checker is not vacuous: it catches malformed XML and schema or VirtualBox violations", () => {
    const good = renderOvf(input);
    expect(() => parseXml(good.replace("</References>", ""))).toThrow(/closes/);
    expect(() => parseXml(good.replace('xmlns:rasd="', 'xmlns:rasdx="'))).toThrow(/undeclared namespace prefix 'rasd'/);
    expect(() => parseXml(good.replace("Virtual disks", "disks & more"))).toThrow(/bare '&'/);
    const swapped = good.replace(
      "<rasd:Caption>disk1</rasd:Caption>\n        <rasd:Description>Disk Image</rasd:Description>",
      "<rasd:Description>Disk Image</rasd:Description>\n        <rasd:Caption>disk1</rasd:Caption>",
    );
    expect(checkOvf(swapped).problems).toEqual([expect.stringMatching(/<rasd:Caption> out of schema order/)]);
    expect(checkOvf(good.replace("<Info>Virtual disks</Info>", "")).problems).toEqual([
      expect.stringMatching(/<DiskSection> must start with <Info>/),
    ]);
    expect(checkOvf(good.replace("byte * 2^20", "KiB")).problems).toEqual([expect.stringMatching(/AllocationUnits 'KiB'/)]);
    expect(checkOvf(good.replace("ovf:/disk/vmdisk1", "ovf:/disk/other")).problems).toEqual([expect.stringMatching(/names no Disk/)]);
    expect(checkOvf(good.replace(' ovf:format="', ' ovf:formatx="')).problems).toEqual(
      expect.arrayContaining([expect.stringMatching(/needs ovf:diskId, ovf:capacity and ovf:format/)]),
    );
  });

  it("the manifest lists SHA256 digests in the OVF spec's form", () => {
    expect(
      renderManifest([
        { name: "a.ovf", sha256: "00ff" },
        { name: "a-disk1.vmdk", sha256: "ab12" },
      ]),
    ).toBe("SHA256(a.ovf)= 00ff\nSHA256(a-disk1.vmdk)= ab12\n");
  });
});
