/** Minimal QMP client: enough to press the ACPI power button and to quit a VM. */
import net from "node:net";

export async function qmpCommand(socketPath: string, command: string, timeoutMs = 3000): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    let buffer = "";
    let stage = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`QMP ${command}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on("data", (data) => {
      buffer += data.toString();
      for (let newline = buffer.indexOf("\n"); newline >= 0; newline = buffer.indexOf("\n")) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        const message = JSON.parse(line) as { QMP?: unknown; return?: unknown; error?: { desc: string } };
        if (message.error) {
          clearTimeout(timer);
          socket.destroy();
          reject(new Error(`QMP ${command}: ${message.error.desc}`));
          return;
        }
        if (stage === 0 && message.QMP) {
          stage = 1;
          socket.write(`${JSON.stringify({ execute: "qmp_capabilities" })}\n`);
        } else if (stage === 1 && "return" in message) {
          stage = 2;
          socket.write(`${JSON.stringify({ execute: command })}\n`);
        } else if (stage === 2 && "return" in message) {
          clearTimeout(timer);
          socket.end();
          resolve();
        }
      }
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    // QEMU exiting mid-handshake closes the socket: say so now rather than when the timer fires.
    socket.on("close", () => {
      clearTimeout(timer);
      reject(new Error(`QMP ${command}: QEMU closed the socket before answering`));
    });
  });
}
