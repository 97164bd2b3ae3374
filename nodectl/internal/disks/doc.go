// Package disks makes an instance's disks: a copy-on-write overlay on a
// cached image, and a blank ephemeral disk. QemuImg makes qcow2 files with
// qemu-img; Sparse makes plain sparse files, for the fake hypervisor.
// Both write to a temporary name and rename, so a crash leaves either no
// disk or a whole one.
package disks
