#!/usr/bin/env bash
# Starts virtlogd and libvirtd when no libvirtd answers (machines without
# systemd, such as containers and CI runners), and waits until it does.
# Does nothing when libvirt already runs, or when not root.
set -euo pipefail

answers() { virsh -c qemu:///system list --name >/dev/null 2>&1; }

command -v virsh >/dev/null 2>&1 || exit 0
# Without udev, /dev/kvm stays root-only: libvirt then finds that KVM
# "went away" each time it checks its qemu capabilities as the qemu user
# and probes qemu again, which makes every domain definition take tens of
# seconds. Give it the group and mode udev would (whether KVM actually
# works is nodectl's boot probe's business).
if [[ -c /dev/kvm && $(id -u) == 0 ]] && getent group kvm >/dev/null; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi
answers && exit 0
if [[ $(id -u) != 0 ]]; then
  echo "libvirt-up: libvirtd is not running; start it as root (virtlogd -d; libvirtd -d)" >&2
  exit 0
fi
pgrep -x virtlogd >/dev/null || virtlogd -d
pgrep -x libvirtd >/dev/null || libvirtd -d
for _ in $(seq 1 100); do
  answers && { echo "libvirt-up: libvirtd is up"; exit 0; }
  sleep 0.1
done
echo "libvirt-up: libvirtd did not answer" >&2
exit 1
