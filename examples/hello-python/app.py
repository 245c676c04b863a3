"""hello-python: a small HTTP server on the standard library for kiln's python baker.

GET /healthz answers "ok"; every other path answers a JSON document with what the image gave
the process (KILN_ENV, GREETING, uid) and what it can see of its root: whether / is writable and
whether any shell is reachable. Two requirements come from the package index as wheels:
MarkupSafe (a manylinux wheel with a C extension) and packaging (pure Python).
"""
import json
import os
import platform
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import markupsafe
import packaging
from packaging.version import Version

SHELLS = ["/bin/sh", "/bin/bash", "/bin/busybox", "/usr/bin/sh", "/usr/bin/bash"]


def root_write() -> str:
    try:
        with open("/kiln-write-probe", "w") as probe:
            probe.write("x")
        return "written"
    except OSError as error:
        return str(error)


def speedups() -> bool:
    try:
        from markupsafe import _speedups  # noqa: F401  (the wheel's compiled extension)
        return True
    except ImportError:
        return False


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            self.send("text/plain", "ok\n")
            return
        body = {
            "message": os.environ.get("GREETING", "hello from kiln (python)"),
            "image": os.environ.get("KILN_IMAGE"),
            "env": os.environ.get("KILN_ENV"),
            "uid": os.getuid(),
            "runtime": "python",
            "python": platform.python_version(),
            "rootWrite": root_write(),
            "shells": [s for s in SHELLS if os.path.exists(s)],
            "escaped": str(markupsafe.escape("<kiln>")),
            "speedups": speedups(),
            "packaging": packaging.__version__,
            "newer": Version("1.10") > Version("1.9"),
            "sysPath": sys.path,
        }
        self.send("application/json", json.dumps(body) + "\n")

    def send(self, content_type: str, text: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet access log
        pass


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)

    def stop(signum: int, frame: object) -> None:
        print("hello-python: SIGTERM, stopping", flush=True)
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"hello-python listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
