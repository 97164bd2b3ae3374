// Package node runs a node's instances. Each instance has a directory
// holding its record (instance.json), its disks and its console log; the
// record says the state the instance is in and the state it should reach
// (running, stopped or terminated), and a converger per instance moves
// the one to the other through the hypervisor driver. Because the record
// is written before anything else is done, a restarted nodectl reads its
// directories, adopts the domains that run, finishes what a crash
// interrupted, and destroys the domains it owns but has no live record of.
package node
