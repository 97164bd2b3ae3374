#!/usr/bin/env bash
# Installs, on Debian 12, the packages the build, `make run` and the tests
# need, skipping those already there. Safe to run any number of times.
set -euo pipefail

packages=(
  ca-certificates curl python3      # make run's readiness checks, client scripts
  gcc libc6-dev pkg-config libvirt-dev      # cgo: the libvirt binding
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients   # nodectl's hypervisor
  qemu-system-x86 qemu-utils                # guests, qcow2 overlays
  busybox-static cpio e2fsprogs iproute2    # scripts/mkimage.sh's demo image; bridges
  nftables dnsmasq-base                     # security groups and addresses; the clusters' DHCP
  vblade                                    # a reference AoE target for the interop tests
  awscli s3cmd python3-boto python3-boto3   # the real S3 and EC2 clients of the e2e suite
  openssl openssh-client                    # independent key fingerprints and certificate checks
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) != 0 ]]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libvirt without systemd: start its daemons when they are not running.
"$(dirname "$0")/libvirt-up.sh"

if ! command -v go >/dev/null 2>&1 && [[ ! -x /usr/local/go/bin/go ]]; then
  echo "install-deps: Go 1.26 is required (https://go.dev/dl/); Debian 12's golang package is too old." >&2
  exit 1
fi
