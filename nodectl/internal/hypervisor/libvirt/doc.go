// Package libvirt is the hypervisor.Driver that runs domains on a libvirt
// daemon (qemu:///system by default), through the libvirt.org/go/libvirt
// binding (cgo); it is the only package that imports the binding.
//
// DomainXML turns a hypervisor.Domain into domain XML; it is a pure
// function, tested against golden files in testdata (go test -update
// rewrites them). Domains boot their kernel and ramdisk directly, read
// the instance ID as the SMBIOS system serial, write the serial console to
// a file, and power off on an ACPI power-button press. Each domain records
// a metadata element in Namespace whose owner names the node; a Driver
// sees, lists and changes only the domains of its own owner, so several
// nodes can share one libvirtd, and a restarted nodectl finds its domains
// with List.
//
// The domain type is never assumed. With DomainType "auto", New uses kvm
// only when /dev/kvm exists and a probe kernel, booted under
// qemu-system-x86_64 -accel kvm, reaches the point of mounting its root
// file system within 10 seconds; otherwise it uses qemu (TCG). The outcome
// is cached in StateDir/domain-type.json for the host's current boot.
//
// The conformance test (driver_test.go) runs hypervisor/drivertest against
// the real libvirtd with the demo image set of scripts/mkimage.sh. It
// skips when libvirtd or the images are missing, except under CI=true,
// where it fails instead.
package libvirt
