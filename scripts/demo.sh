#!/usr/bin/env bash
# The main job, end to end: install what is needed, bake examples/hello-node, boot it in QEMU,
# ask it over HTTP, and shut it down cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
npx kiln bake examples/hello-node
port="${PORT:-8080}"
npx kiln run hello-node:0.1.0 -p "$port:8080" --detach --quiet --json > .kiln-demo.json
echo "--- curl http://127.0.0.1:$port/"
curl -fsS "http://127.0.0.1:$port/"
npx kiln stop "$(node -e 'console.log(JSON.parse(require("fs").readFileSync(".kiln-demo.json","utf8")).id)')"
rm -f .kiln-demo.json
