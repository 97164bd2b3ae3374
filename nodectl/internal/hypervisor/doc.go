// Package hypervisor defines what nodectl needs from a hypervisor: the
// Driver interface, the Domain it runs, and the errors drivers return.
// Drivers live in subpackages: libvirt (the real one) and fake (in
// memory, for unit tests and the scale simulation). A driver manages only
// the domains of its owner, the node it was created for, so that several
// nodectl processes can share one libvirtd.
package hypervisor
