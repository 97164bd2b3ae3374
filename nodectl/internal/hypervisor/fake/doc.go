// Package fake is an in-memory hypervisor driver for unit tests and the
// scale simulation. Domains "boot" at once, or after a scripted delay,
// and write one line to their console file as the demo image does; any
// operation can be made to fail. nodectl uses it when its configuration
// says driver "fake".
package fake
