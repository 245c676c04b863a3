#!/usr/bin/env bash
# Installs what kiln needs on a fresh Debian 12 machine: the system tools (from apt) and the
# npm dependencies (which also compiles kiln). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  qemu-system-x86 qemu-utils ovmf          # boot images locally (BIOS and UEFI)
  mtools dosfstools syslinux syslinux-common systemd-boot-efi  # boot partition
  erofs-utils                              # read-only root filesystems
  gcc libc6-dev make                       # kiln-exec helper and the native example
  haproxy wrk                              # local load balancer and load generator
  python3 python3-venv                     # the AWS emulator (moto) for the tests
  python3-pip                              # python baker: installs requirements (wheels) at bake time
  g++                                      # node baker: node-gyp compiles C++ addons (examples/node-addon)
  openjdk-17-jdk-headless                  # builds examples/hello-java (javac, jar); bakes use the JDK from apt
  maven                                    # builds bench/fixtures/spring-service (the Spring Boot fat jar the bench and its test bake)
  ca-certificates
  libbearssl-dev                           # kiln-https, the image's TLS client for secrets (static libbearssl.a)
  dpkg-dev                                 # rebake tests: dpkg-scanpackages indexes a loopback Debian repository
  systemd                                  # schedule tests: systemd-analyze verify checks the generated units
  bubblewrap                               # bake sandbox (bwrap): installs, compiles, extraction confined
  flex bison bc libelf-dev xz-utils zstd   # kernel: minimal (kiln compiles the kernel from Debian's linux-source; zstd initramfs)
  debootstrap e2fsprogs                    # npm run bench:boot builds the 'usual way' Debian image (debootstrap, mkfs.ext4 -d)
)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# kiln resolves base packages (kernel, busybox, libc) through apt, so the indexes must be fresh.
$sudo apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# npm install, not npm ci: npm 11 writes lock files with only this platform's optional
# packages (esbuild/rollup binaries), and npm ci then refuses them as out of sync. install
# still follows the lock for every version it pins.
npm install --no-audit --no-fund
# moto's standalone server: the AWS emulator the push/deploy tests talk to over HTTP.
if [ ! -x .venv/bin/moto_server ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q "moto[server]==5.2.5"
fi
