// kiln-https, the image's TLS client, run on the host as kiln builds it for the initramfs:
// it must accept a chain that leads to a CA in its CA file and names the host, and refuse
// everything else with a message naming the host and the reason. Certificates come from the
// openssl CLI (a test CA with an intermediate, an expired leaf, a wrong name, a stranger's CA).
import { openSandbox } from "../../src/sandbox.js";
import os from "node:os";
import path from "node:path";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBakeContext } from "../../src/bake/context.js";
import { buildHttpsClient, loadAwsRoots, AWS_ROOT_CERTIFICATES } from "../../src/bake/https-client.js";
import { CommandFailedError } from "../../src/errors.js";
import { run } from "../../src/exec.js";
import { issue, makeCa, startTlsServer, type Issued, type TlsServer } from "../fixtures/tls/pki.js";
import { quiet, sharedHome } from "./harness.js";

const request = "GET /ping HTTP/1.1\r\nHost: api.kiln.test\r\nConnection: close\r\n\r\n";

describe.sequential("kiln-https verifies the server", () => {
  let dir: string;
  let client: string;
  let root: Issued;
  let awsRoots: string;
  const servers: TlsServer[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "kiln-https-"));
    const sandbox = await openSandbox({ enabled: true, warn: () => undefined });
    const ctx = createBakeContext(sharedHome(), dir, undefined, quiet, sandbox);
    client = path.join(dir, "kiln-https");
    await writeFile(client, await buildHttpsClient(ctx));
    await chmod(client, 0o755);
    const roots = await loadAwsRoots(ctx);
    awsRoots = path.join(dir, "aws-roots.pem");
    await writeFile(awsRoots, roots.pem);
    root = await makeCa(dir, "kiln-test-root");
  }, 120_000);

  afterAll(async () => {
    for (const s of servers) await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function serve(cert: Issued, chain: readonly string[] = []): Promise<TlsServer> {
    const server = await startTlsServer(cert, { chain });
    servers.push(server);
    return server;
  }

  /** Runs the client; resolves with its output or the failure's stderr. */
  async function fetchWith(host: string, port: number, caFile: string): Promise<{ ok: boolean; out: string }> {
    try {
      return { ok: true, out: (await run([client, `${host}:${port}`, caFile, "127.0.0.1"], { input: request, timeoutMs: 30_000 })).stdout };
    } catch (error) {
      if (!(error instanceof CommandFailedError)) throw error;
      return { ok: false, out: error.message };
    }
  }

  it("accepts a chain (leaf + intermediate) that leads to a CA in the file and names the host", async () => {
    const intermediate = await issue(dir, "intermediate", { dnsName: "kiln test intermediate", issuer: root, ca: true });
    const leaf = await issue(dir, "good", { dnsName: "api.kiln.test", issuer: intermediate });
    const server = await serve(leaf, [intermediate.cert]);
    const result = await fetchWith("api.kiln.test", server.port, root.cert);
    expect(result, result.out).toEqual({ ok: true, out: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello" });
    expect(server.received()).toBe(request);
  });

  it("refuses a certificate for another name, before sending the request", async () => {
    const server = await serve(await issue(dir, "other-name", { dnsName: "other.kiln.test", issuer: root }));
    const result = await fetchWith("api.kiln.test", server.port, root.cert);
    expect(result.ok).toBe(false);
    expect(result.out).toMatch(new RegExp(`kiln-https: api\\.kiln\\.test:${server.port}: certificate name mismatch`));
    expect(server.received()).toBe("");
  });

  it("refuses an expired certificate", async () => {
    const expired = await issue(dir, "expired", {
      dnsName: "api.kiln.test",
      issuer: root,
      notBefore: "20200101000000Z",
      notAfter: "20210101000000Z",
    });
    const server = await serve(expired);
    const result = await fetchWith("api.kiln.test", server.port, root.cert);
    expect(result.out).toMatch(new RegExp(`kiln-https: api\\.kiln\\.test:${server.port}: certificate expired or not yet valid`));
    expect(server.received()).toBe("");
  });

  it("refuses a self-signed certificate and a chain to a CA it was not given", async () => {
    const selfSigned = await serve(await issue(dir, "self-signed", { dnsName: "api.kiln.test" }));
    const stranger = await makeCa(dir, "stranger-root");
    const strangers = await serve(await issue(dir, "strangers", { dnsName: "api.kiln.test", issuer: stranger }));
    for (const server of [selfSigned, strangers]) {
      const result = await fetchWith("api.kiln.test", server.port, root.cert);
      expect(result.out).toMatch(new RegExp(`kiln-https: api\\.kiln\\.test:${server.port}: certificate not trusted`));
      expect(server.received()).toBe("");
    }
  });

  it("trusts only Amazon's roots in the image: a test CA's chain is refused with that bundle", async () => {
    const server = await serve(await issue(dir, "for-aws", { dnsName: "ssm.eu-central-1.amazonaws.com", issuer: root }));
    const result = await fetchWith("ssm.eu-central-1.amazonaws.com", server.port, awsRoots);
    expect(result.out).toMatch(/certificate not trusted/);
    const bundle = path.join(dir, "aws-roots.p7");
    await run(["openssl", "crl2pkcs7", "-nocrl", "-certfile", awsRoots, "-out", bundle]);
    const subjects = (await run(["openssl", "pkcs7", "-in", bundle, "-print_certs", "-noout"])).stdout;
    expect(subjects.match(/^subject=.*$/gm)).toHaveLength(AWS_ROOT_CERTIFICATES.length);
    expect(subjects).toMatch(/CN = Amazon Root CA 1/);
    expect(subjects).toMatch(/CN = Starfield Services Root Certificate Authority - G2/);
  });

  it("names the host and the reason when nothing listens, and refuses bad arguments", async () => {
    const closed = await serve(await issue(dir, "closed", { dnsName: "api.kiln.test", issuer: root }));
    const port = closed.port;
    await closed.close();
    servers.splice(servers.indexOf(closed), 1);
    expect((await fetchWith("api.kiln.test", port, root.cert)).out).toMatch(
      new RegExp(`kiln-https: api\\.kiln\\.test:${port}: connection refused`),
    );
    expect((await fetchWith("api.kiln.test", port, path.join(dir, "missing.pem"))).out).toMatch(/missing\.pem: cannot open the file/);
    await expect(run([client, "bad host:1", root.cert, "127.0.0.1"], { input: "" })).rejects.toThrow(/HOST must be a DNS name/);
    await expect(run([client, "api.kiln.test:443", root.cert], { input: "" })).rejects.toThrow(/HOST is a name: pass its IPv4 ADDRESS/);
  });
});
