// Package sched holds the placement policies (ARCHITECTURE.md,
// "Placement") as pure functions over resource snapshots: which node of a
// cluster runs an instance, and which cluster of the cloud gets a
// request. Callers own the snapshots and their locking; nothing here
// remembers anything between calls except the cursor the caller passes
// back in.
package sched
