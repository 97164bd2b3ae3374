// Package placement holds the pure part of a cluster's placement that
// pkg/sched does not: the private address pool (IP and MAC leases).
package placement
