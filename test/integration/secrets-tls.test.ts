// Issue 12, hole 8: secrets over unverified TLS. The init fetches ssm:/kms: values over HTTPS;
// anyone on the path who answers with a certificate of their own must get nothing. Here the
// secrets endpoint is a TLS proxy in front of moto whose certificate is self-signed, with the
// right name (the attacker's best case): the instance must refuse it before sending a byte of
// the signed request, name the variable and the reason on the console, and power off.
import os from "node:os";
import path from "node:path";
import { mkdtemp, rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { ImageStore } from "../../src/image/store.js";
import { LocalVm } from "../../src/providers/qemu.js";
import { IMDS_NETWORK_HOST } from "../../src/providers/qemu-args.js";
import { startImds, type ImdsServer } from "../fixtures/imds/server.js";
import { issue, startTlsServer, type TlsServer } from "../fixtures/tls/pki.js";
import { quiet, repo, sharedHome } from "./harness.js";
import { startMoto, type Moto } from "./moto.js";

const home = sharedHome();
const region = "eu-central-1";
const secret = "tls-secret-that-must-stay-home";

describe.sequential("secrets from an endpoint whose certificate the image does not trust", () => {
  let moto: Moto;
  let imds: ImdsServer;
  let proxy: TlsServer;
  let pki: string;
  let vm: LocalVm | undefined;

  beforeAll(async () => {
    moto = await startMoto();
    await fetch(`${moto.endpoint}/`, {
      method: "POST",
      body: JSON.stringify({ Name: "/tls-app/db-password", Value: secret, Type: "SecureString" }),
      headers: {
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": "AmazonSSM.PutParameter",
        authorization: `AWS4-HMAC-SHA256 Credential=testing/20250101/${region}/ssm/aws4_request, SignedHeaders=host, Signature=0`,
      },
    });
    pki = await mkdtemp(path.join(os.tmpdir(), "kiln-tls-"));
    // The guest reaches the host as IMDS_NETWORK_HOST, so that is the name the certificate must
    // carry for the check to get past the name to the chain (kiln-https matches DNS names only).
    const forged = await issue(pki, "forged", { dnsName: IMDS_NETWORK_HOST });
    proxy = await startTlsServer(forged, { forwardTo: Number(new URL(moto.endpoint).port) });
    imds = await startImds({
      instanceId: "i-0tls0000000000001",
      availabilityZone: `${region}a`,
      region,
      role: { name: "tls-app-role", accessKeyId: "ASIAEXAMPLETLSKEY", secretAccessKey: "tls-role-secret", token: "tls-role-token" },
      userData: [
        "GREETING=hello",
        "DB_PASSWORD=ssm:/tls-app/db-password",
        `KILN_AWS_ENDPOINT=https://${IMDS_NETWORK_HOST}:${proxy.port}`,
        "",
      ].join("\n"),
    });
  }, 120_000);

  afterAll(async () => {
    if (vm) {
      await vm.shutdown(5_000);
      await vm.cleanup();
    }
    await imds?.close();
    await proxy?.close();
    await moto?.stop();
    if (pki) await rm(pki, { recursive: true, force: true });
  });

  it("refuses the endpoint, powers off, and names the variable and the reason", async () => {
    const { image } = await bake(path.join(repo, "test", "fixtures", "imds", "env-app"), {}, home, quiet);
    const stored = await new ImageStore(home).resolve(image.ref);
    vm = await LocalVm.start({
      image: stored,
      home,
      firmware: "bios",
      forwards: [],
      env: {},
      seedDrive: false,
      imds: { hostPort: imds.port },
    });
    const outcome = await Promise.race([
      vm.exited,
      proxy.firstRequest.then((head) => `the proxy read the instance's request:\n${head}`),
      new Promise<string>((r) => setTimeout(() => r("still running after 240 s"), 240_000)),
    ]);
    const consoleText = (await vm.consoleTail(200)).replace(/\r/g, "");

    // Nothing the instance sent could be read by the proxy: no signed request, no credentials.
    expect(proxy.received(), "the proxy decrypted the instance's request").not.toContain("X-Amz-Target");
    expect(outcome, consoleText).toMatch(/^QEMU exited/);
    expect(consoleText).toMatch(/secret DB_PASSWORD \(ssm:\/tls-app\/db-password\) could not be resolved: .*certificate not trusted/);
    expect(consoleText).toMatch(/the secrets endpoint's certificate was refused/);
    expect(consoleText).toMatch(/FATAL: could not resolve the app's secrets/);
    expect(consoleText).not.toMatch(/starting app/);
    expect(consoleText).not.toContain(secret);
  }, 400_000);
});
