/** Host ports for forwards: checked before QEMU starts, so "in use" is a clear error, not a QEMU failure. */
import net from "node:net";
import { InputError } from "../errors.js";

export async function checkPortFree(address: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE")
        reject(
          new InputError(`port ${port} on ${address} is already in use`, {
            hint: `choose another host port, e.g. -p ${port + 10000 > 65535 ? port - 1 : port + 10000}:GUEST_PORT, or stop what listens there`,
          }),
        );
      else if (error.code === "EACCES")
        reject(new InputError(`port ${port} on ${address} needs privileges kiln does not have`, { hint: "use a host port above 1023" }));
      else if (error.code === "EADDRNOTAVAIL" || error.code === "ENOTFOUND")
        reject(new InputError(`address ${address} is not on this host`, { hint: "forward from 127.0.0.1 (the default) or 0.0.0.0" }));
      else reject(error);
    });
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve()));
  });
}

/** A free port chosen by the kernel (for tests and for instances behind a load balancer). */
export async function findFreePort(address = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen({ host: address, port: 0 }, () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}
