/** The QEMU command line for a kiln VM, as a pure function of its settings. */
export type Firmware = "bios" | "uefi";
export type Accelerator = "kvm" | "tcg";
/** The root disk's controller: virtio (QEMU's default), nvme (as on EC2 Nitro), ide (PIIX, as in kiln's VirtualBox VMs). */
export type DiskBus = "virtio" | "nvme" | "ide";
export const DISK_BUSES: readonly DiskBus[] = ["virtio", "nvme", "ide"];

export interface PortForward {
  readonly hostAddress: string;
  readonly hostPort: number;
  readonly guestPort: number;
}

/**
 * A guest address:port whose TCP connections QEMU's user networking hands to a host command
 * (its stdin/stdout become the connection; one process per connection).
 */
export interface GuestForward {
  readonly guestAddress: string;
  readonly guestPort: number;
  readonly command: string;
}

/** The EC2 instance metadata address; QEMU only forwards it inside a user network that contains it. */
export const IMDS_ADDRESS = "169.254.169.254";
/** User network for VMs with a local metadata service, and the host as the guest sees it there (QEMU: network + 0.0.2.2). */
export const IMDS_USER_NETWORK = "169.254.0.0/16";
export const IMDS_NETWORK_HOST = "169.254.2.2";

export interface QemuVmConfig {
  readonly disk: string;
  /** Disk format as qemu-img names it (raw, vdi, vmdk, vpc, qcow2). */
  readonly diskFormat: string;
  /** Default virtio. */
  readonly diskBus?: DiskBus;
  readonly seed: string | undefined;
  readonly firmware: Firmware;
  /** OVMF code and a writable copy of the variable store, for UEFI. */
  readonly ovmf?: { readonly code: string; readonly vars: string };
  readonly accelerator: Accelerator;
  readonly memoryMiB: number;
  readonly cpus: number;
  readonly forwards: readonly PortForward[];
  readonly consoleFile: string;
  readonly qmpSocket: string;
  readonly pidFile: string;
  /** User network (CIDR) instead of QEMU's 10.0.2.0/24, where the host is 10.0.2.2. */
  readonly network?: string;
  readonly guestForwards?: readonly GuestForward[];
}

export function buildQemuArgs(vm: QemuVmConfig): string[] {
  const hostfwd = vm.forwards.map((f) => `,hostfwd=tcp:${f.hostAddress}:${f.hostPort}-:${f.guestPort}`).join("");
  // QEMU's option parser reads ",," as a literal comma.
  const guestfwd = (vm.guestForwards ?? [])
    .map((g) => `,guestfwd=tcp:${g.guestAddress}:${g.guestPort}-cmd:${g.command.replaceAll(",", ",,")}`)
    .join("");
  const network = vm.network ? `,net=${vm.network}` : "";
  const bus = vm.diskBus ?? "virtio";
  const args = [
    "qemu-system-x86_64",
    "-machine",
    // PIIX IDE is on the i440FX machine; q35's IDE is AHCI, which neither kernel drives.
    bus === "ide" ? "pc" : "q35",
    "-accel",
    vm.accelerator,
    // TCG's "max" model has every instruction a modern runtime (Node, JVM) may probe for.
    "-cpu",
    vm.accelerator === "kvm" ? "host" : "max",
    "-m",
    String(vm.memoryMiB),
    "-smp",
    String(vm.cpus),
    "-nodefaults",
    "-display",
    "none",
    "-no-user-config",
    // A panicking guest reboots (panic=-1); -no-reboot turns that into QEMU exiting.
    "-no-reboot",
    "-chardev",
    `file,id=console,path=${vm.consoleFile}`,
    "-serial",
    "chardev:console",
    "-qmp",
    `unix:${vm.qmpSocket},server=on,wait=off`,
    "-pidfile",
    vm.pidFile,
    ...rootDriveArgs(vm.disk, vm.diskFormat, bus),
    "-netdev",
    `user,id=net0${network}${hostfwd}${guestfwd}`,
    "-device",
    "virtio-net-pci,netdev=net0",
    "-device",
    "virtio-rng-pci",
  ];
  if (vm.seed) args.push("-drive", `file=${vm.seed},format=raw,if=virtio,readonly=on`);
  if (vm.firmware === "uefi") {
    if (!vm.ovmf) throw new Error("UEFI boot needs OVMF firmware paths");
    args.push(
      "-drive",
      `if=pflash,format=raw,unit=0,readonly=on,file=${vm.ovmf.code}`,
      "-drive",
      `if=pflash,format=raw,unit=1,file=${vm.ovmf.vars}`,
    );
  }
  return args;
}

/**
 * The store's image must never change: read-only where the controller allows it; IDE has no
 * read-only drives, so its writes (there are none: the root is read-only) go to a throwaway overlay.
 */
function rootDriveArgs(disk: string, format: string, bus: DiskBus): string[] {
  const file = `file=${disk},format=${format}`;
  if (bus === "virtio") return ["-drive", `${file},if=virtio,readonly=on`];
  // bootindex: the firmware would otherwise try the (virtio) seed drive first and stop there.
  if (bus === "ide") return ["-drive", `${file},if=none,id=root,snapshot=on`, "-device", "ide-hd,drive=root,bus=ide.0,bootindex=0"];
  return ["-drive", `${file},if=none,id=root,readonly=on`, "-device", "nvme,drive=root,serial=kiln-root,bootindex=0"];
}

/** Parses -p values: "8080", "18080:8080" or "127.0.0.1:18080:8080". */
export function parsePortForward(value: string): PortForward | { problem: string } {
  const parts = value.split(":");
  const nums = parts.slice(-2).map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
  const valid = (n: number | undefined) => n !== undefined && Number.isInteger(n) && n >= 1 && n <= 65535;
  if (parts.length === 1 && valid(nums[0])) return { hostAddress: "127.0.0.1", hostPort: nums[0]!, guestPort: nums[0]! };
  if (parts.length === 2 && valid(nums[0]) && valid(nums[1])) return { hostAddress: "127.0.0.1", hostPort: nums[0]!, guestPort: nums[1]! };
  if (parts.length === 3 && valid(nums[0]) && valid(nums[1])) {
    // QEMU's hostfwd only takes a dotted IPv4 address.
    const address = parts[0] === "localhost" ? "127.0.0.1" : parts[0]!;
    const octets = address.split(".");
    if (octets.length === 4 && octets.every((o) => /^\d{1,3}$/.test(o) && Number(o) <= 255))
      return { hostAddress: address, hostPort: nums[0]!, guestPort: nums[1]! };
    return {
      problem: `-p ${value}: '${parts[0]}' is not an IPv4 address; use ADDRESS:HOST_PORT:GUEST_PORT with 127.0.0.1, 0.0.0.0 or an address of this host`,
    };
  }
  return { problem: `-p ${value}: expected HOST_PORT:GUEST_PORT (e.g. 8080:8080), a single PORT, or ADDRESS:HOST_PORT:GUEST_PORT` };
}
