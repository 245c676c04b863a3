// The boot tests, once per kernel (boot.test.ts: Debian's cloud kernel; boot-minimal-kernel.test.ts:
// the kernel kiln builds). Real boots: both examples are baked and booted in QEMU (TCG here),
// under SeaBIOS and OVMF, from virtio, NVMe and IDE disks, and must answer HTTP over a forwarded
// port with the values the image and the seed drive gave, then shut down cleanly on ACPI.
import { describe, expect, it } from "vitest";
import { ImageStore } from "../../src/image/store.js";
import { LocalVm } from "../../src/providers/qemu.js";
import { waitHealthy } from "../../src/run/health.js";
import { findFreePort } from "../../src/run/ports.js";
import { startImds } from "../fixtures/imds/server.js";
import { boot, bakeExample, httpGet, processAlive, sharedHome, trackRuns, type TestKernel } from "./harness.js";

export function describeBoots(kernel: TestKernel): void {
  const home = sharedHome();
  const running = trackRuns();

  describe.sequential(`boot with kernel: ${kernel}`, () => {
    it("hello-node answers HTTP under legacy BIOS, as uid 1000, with boot-time env from the seed drive", async () => {
      const { image } = await bakeExample("hello-node", home, {}, kernel);
      expect(image.manifest.kernel.kind).toBe(kernel === "minimal" ? "minimal" : undefined);
      const run = await boot(image.ref, home, { env: ["GREETING=from-seed"], kilnEnv: "test" });
      running.push(run);
      const answer = await httpGet(`http://127.0.0.1:${run.port}/`);
      expect(answer.status).toBe(200);
      const body = JSON.parse(answer.body) as Record<string, unknown>;
      expect(body).toMatchObject({ message: "from-seed", env: "test", uid: 1000, image: "hello-node:0.1.0", hostname: "hello-node" });
      expect(String(body.node)).toMatch(/^v20\./);
    });

    it("hello-node boots the same disk under UEFI (OVMF + systemd-boot)", async () => {
      const { image } = await bakeExample("hello-node", home, {}, kernel);
      const run = await boot(image.ref, home, { firmware: "uefi" });
      running.push(run);
      const answer = await httpGet(`http://127.0.0.1:${run.port}/healthz`);
      expect(answer).toEqual({ status: 200, body: "ok\n" });
    });

    it("hello-native (static C server) answers HTTP under BIOS and UEFI, and stops cleanly on the ACPI power button", async () => {
      const { image } = await bakeExample("hello-native", home, {}, kernel);
      for (const firmware of ["bios", "uefi"] as const) {
        const run = await boot(image.ref, home, { firmware });
        running.push(run);
        const answer = await httpGet(`http://127.0.0.1:${run.port}/`);
        expect(answer.status).toBe(200);
        expect(JSON.parse(answer.body)).toMatchObject({ runtime: "native", env: "dev", uid: 1000, image: "hello-native:0.1.0" });
        const how = await run.vm.shutdown(30_000);
        expect(how).toBe("clean");
        expect(processAlive(run.vm.record.pid)).toBe(false);
        // The init stopped the app with SIGTERM before powering off.
        expect(await run.vm.consoleTail(10)).toMatch(/hello-native: SIGTERM, stopped[\s\S]*powering off/);
      }
    });

    it("hello-native boots from an NVMe disk (EC2 Nitro) and a PIIX IDE disk (kiln's VirtualBox VMs)", async () => {
      const { image } = await bakeExample("hello-native", home, {}, kernel);
      for (const diskBus of ["nvme", "ide"] as const) {
        const run = await boot(image.ref, home, { diskBus });
        running.push(run);
        const answer = await httpGet(`http://127.0.0.1:${run.port}/healthz`);
        expect(answer.status, diskBus).toBe(200);
        const console = await run.vm.consoleTail(400);
        expect(console, diskBus).toMatch(diskBus === "nvme" ? /root disk \/dev\/nvme0n1/ : /root disk \/dev\/sda/);
        expect(await run.vm.shutdown(30_000), diskBus).toBe("clean");
      }
    });

    it("hello-native boots as on EC2: NVMe disk, no seed drive, user-data and instance facts from IMDSv2", async () => {
      const { image } = await bakeExample("hello-native", home, {}, kernel);
      const imds = await startImds({
        instanceId: "i-0123456789abcdef0",
        availabilityZone: "eu-west-1b",
        region: "eu-west-1",
        userData: "KILN_ENV=prod\nGREETING=from-imds\n",
      });
      const port = await findFreePort();
      const vm = await LocalVm.start({
        image: await new ImageStore(home).resolve(image.ref),
        home,
        firmware: "bios",
        forwards: [{ hostAddress: "127.0.0.1", hostPort: port, guestPort: 8080 }],
        env: {},
        seedDrive: false,
        imds: { hostPort: imds.port },
        diskBus: "nvme",
      });
      try {
        const health = await waitHealthy(`http://127.0.0.1:${port}/healthz`, 180_000, vm.exited, vm.startedAtMs);
        expect(health.healthy, await vm.consoleTail(40)).toBe(true);
        expect(JSON.parse((await httpGet(`http://127.0.0.1:${port}/`)).body)).toMatchObject({ message: "from-imds", env: "prod" });
        expect(imds.requests[0]).toMatchObject({ method: "PUT", path: "/latest/api/token", status: 200 });
        expect(await vm.consoleTail(60)).toMatch(/instance i-0123456789abcdef0 in eu-west-1b/);
      } finally {
        await vm.shutdown(20_000);
        await vm.cleanup();
        await imds.close();
      }
    });
  });
}
