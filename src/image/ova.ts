/**
 * OVA: a tar holding an OVF 1.0 descriptor, a manifest of SHA256 digests, and the disk as a
 * streamOptimized VMDK, in that order (OVF requires the descriptor first; importers that
 * stream, like ESXi, want the manifest before the disks).
 *
 * The virtual hardware is what the image's kernel drives: the disk on a PIIX4 IDE controller
 * (ata_piix) and a paravirtual NIC. No NIC type works in both VirtualBox and VMware with this
 * kernel (it has no e1000), so the descriptor is written for one of them: virtio-net for
 * VirtualBox, VMXNET3 for VMware.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { sha256, sha256File } from "../fsutil.js";
import type { StoredImage } from "./store.js";

export type OvaTarget = "virtualbox" | "vmware";
export const OVA_TARGETS: readonly OvaTarget[] = ["virtualbox", "vmware"];

export const OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1";
export const RASD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData";
export const VSSD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData";
export const VMDK_STREAM_FORMAT = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";

/** 2020-01-01, the fixed timestamp of every OVA member (same as the FAT entries). */
const FIXED_MTIME = new Date(1577836800 * 1000);

export interface OvfInput {
  /** VirtualSystem id and file prefix, e.g. hello-node-0.1.0. */
  readonly systemId: string;
  readonly ref: string;
  readonly digest: string;
  readonly diskHref: string;
  readonly diskFileBytes: number;
  readonly capacityBytes: number;
  readonly memoryMiB: number;
  readonly cpus: number;
  readonly target: OvaTarget;
}

const HARDWARE: Record<OvaTarget, { systemType: string; nicSubType: string; osExtra: string; envelopeNs: string }> = {
  // VirtualBox maps "virtio-net" to its virtio NIC and reads vbox:OSType to pick the guest type.
  virtualbox: {
    systemType: "virtualbox-2.2",
    nicSubType: "virtio-net",
    osExtra: `\n      <vbox:OSType ovf:required="false">Debian_64</vbox:OSType>`,
    envelopeNs: ` xmlns:vbox="http://www.virtualbox.org/ovf/machine"`,
  },
  // vmx-13 is ESXi 6.5 / Workstation 14 and later.
  vmware: { systemType: "vmx-13", nicSubType: "VmxNet3", osExtra: "", envelopeNs: ` xmlns:vmw="http://www.vmware.com/schema/ovf"` },
};

function esc(text: string | number): string {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** An Item's rasd elements, written in the alphabetical order the CIM schema's sequence requires. */
function item(fields: Readonly<Record<string, string | number>>): string {
  const lines = Object.keys(fields)
    .sort()
    .map((k) => `        <rasd:${k}>${esc(fields[k]!)}</rasd:${k}>`);
  return `      <Item>\n${lines.join("\n")}\n      </Item>`;
}

export function renderOvf(input: OvfInput): string {
  const hw = HARDWARE[input.target];
  const osType = input.target === "vmware" ? ` vmw:osType="otherLinux64Guest"` : "";
  return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="${OVF_NS}" xmlns:ovf="${OVF_NS}" xmlns:rasd="${RASD_NS}" xmlns:vssd="${VSSD_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"${hw.envelopeNs}>
  <References>
    <File ovf:href="${esc(input.diskHref)}" ovf:id="file1" ovf:size="${input.diskFileBytes}"/>
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
    <Disk ovf:capacity="${input.capacityBytes}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="${VMDK_STREAM_FORMAT}"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks</Info>
    <Network ovf:name="NAT">
      <Description>The network the app is reached on</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="${esc(input.systemId)}">
    <Info>kiln image ${esc(input.ref)} (${esc(input.digest)})</Info>
    <Name>${esc(input.systemId)}</Name>
    <AnnotationSection>
      <Info>Image identity</Info>
      <Annotation>${esc(input.ref)} ${esc(input.digest)}</Annotation>
    </AnnotationSection>
    <OperatingSystemSection ovf:id="96"${osType}>
      <Info>Guest operating system</Info>
      <Description>Debian 64-bit (kiln image: Linux kernel, busybox init, the app)</Description>${hw.osExtra}
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware the image's kernel has drivers for</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>${esc(input.systemId)}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>${hw.systemType}</vssd:VirtualSystemType>
      </System>
${item({ Caption: `${input.cpus} virtual CPU`, Description: "Number of virtual CPUs", ElementName: `${input.cpus} virtual CPU`, InstanceID: 1, ResourceType: 3, VirtualQuantity: input.cpus })}
${item({ AllocationUnits: "byte * 2^20", Caption: `${input.memoryMiB} MB of memory`, Description: "Memory size", ElementName: `${input.memoryMiB} MB of memory`, InstanceID: 2, ResourceType: 4, VirtualQuantity: input.memoryMiB })}
${item({ Address: 0, Caption: "ideController0", Description: "IDE Controller", ElementName: "ideController0", InstanceID: 3, ResourceSubType: "PIIX4", ResourceType: 5 })}
${item({ AddressOnParent: 0, Caption: "disk1", Description: "Disk Image", ElementName: "disk1", HostResource: "ovf:/disk/vmdisk1", InstanceID: 4, Parent: 3, ResourceType: 17 })}
${item({ AutomaticAllocation: "true", Caption: "Ethernet adapter on 'NAT'", Connection: "NAT", Description: "Network adapter", ElementName: "ethernet0", InstanceID: 5, ResourceSubType: hw.nicSubType, ResourceType: 10 })}
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;
}

/** The OVF manifest: one "SHA256(name)= hex" line per member, in the archive's order. */
export function renderManifest(entries: readonly { name: string; sha256: string }[]): string {
  return entries.map((e) => `SHA256(${e.name})= ${e.sha256}\n`).join("");
}

/** Writes the OVA for `image` to `dest`, with `vmdk` (streamOptimized) as its disk. */
export async function buildOva(image: StoredImage, vmdk: string, dest: string, target: OvaTarget): Promise<void> {
  const m = image.manifest;
  const systemId = `${m.name}-${m.version}`;
  const names = { ovf: `${systemId}.ovf`, mf: `${systemId}.mf`, vmdk: `${systemId}-disk1.vmdk` };
  const vmdkBytes = (await stat(vmdk)).size;
  const ovf = renderOvf({
    systemId,
    ref: `${m.name}:${m.version}`,
    digest: image.digest,
    diskHref: names.vmdk,
    diskFileBytes: vmdkBytes,
    capacityBytes: m.layout.totalBytes,
    memoryMiB: m.resources.memoryMiB,
    cpus: m.resources.cpus,
    target,
  });
  const mf = renderManifest([
    { name: names.ovf, sha256: sha256(ovf) },
    { name: names.vmdk, sha256: await sha256File(vmdk) },
  ]);

  const pack = tar.pack();
  const header = (name: string, size: number) => ({ name, size, mode: 0o644, mtime: FIXED_MTIME, uid: 0, gid: 0, uname: "", gname: "" });
  const written = pipeline(pack, createWriteStream(dest));
  pack.entry(header(names.ovf, Buffer.byteLength(ovf)), ovf);
  pack.entry(header(names.mf, Buffer.byteLength(mf)), mf);
  const entry = pack.entry(header(names.vmdk, vmdkBytes));
  await pipeline(createReadStream(vmdk), entry);
  pack.finalize();
  await written;
}
