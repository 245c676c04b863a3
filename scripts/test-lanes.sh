#!/usr/bin/env bash
# The vitest part of `npm test`, in two lanes that run at the same time on CI's 2 cores:
# - api: the AWS API tests (moto behind the strict layer: test/integration/aws-*, strict-*,
#   push), which mostly wait on HTTP round trips and consistency windows;
# - vm:  everything else (unit tests, and integration tests that boot QEMU under TCG), one file
#   at a time as vitest.config.ts says, so boots do not starve each other.
# Each lane keeps its own KILN_HOME (image store, package cache), so they share no files.
# Exit status: non-zero when either lane failed. Extra arguments go to both vitest runs.
set -uo pipefail
cd "$(dirname "$0")/.."
API=(test/integration/aws- test/integration/strict- test/integration/push.test.ts)
EXCLUDE=(--exclude 'test/integration/aws-*' --exclude 'test/integration/strict-*' --exclude 'test/integration/push.test.ts')

# The minimal kernel (boot-minimal-kernel.test.ts, which vitest.config.ts runs last) takes
# minutes to compile on a clean machine: it compiles from the start at low priority in the vm
# lane's kiln home, on the core time the lanes leave idle. The test's bake waits for this build,
# or builds the kernel itself if this one failed (the log says why). Not for partial runs.
kernel=""
if [ "$#" -eq 0 ]; then
  mkdir -p .kiln-test
  KILN_HOME="${KILN_TEST_HOME:-$PWD/.kiln-test/home}" nice -n 15 node bin/kiln.js kernel build examples/hello-native \
    >.kiln-test/kernel-build.log 2>&1 &
  kernel=$!
fi

(
  KILN_TEST_HOME="${KILN_TEST_HOME_API:-$PWD/.kiln-test/home-api}" npx vitest run "${API[@]}" "$@" 2>&1 | sed -u 's/^/[api] /'
  exit "${PIPESTATUS[0]}"
) &
api=$!
npx vitest run "${EXCLUDE[@]}" "$@" &
vm=$!
wait "$vm"
vm_status=$?
wait "$api"
api_status=$?
if [ -n "$kernel" ] && kill -0 "$kernel" 2>/dev/null; then kill "$kernel" 2>/dev/null; fi
echo "test lanes: vm exit ${vm_status}, api exit ${api_status}" >&2
[ "$vm_status" -eq 0 ] && [ "$api_status" -eq 0 ]
