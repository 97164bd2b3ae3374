// Package placement holds the pure parts of a cluster's placement that
// pkg/sched does not: choosing nodes for a run of instances of possibly
// different types, and the private address pool (IP and MAC leases).
package placement
