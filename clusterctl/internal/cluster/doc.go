// Package cluster is a cluster controller's state machine: the node
// registry and its health, placement of instances on nodes with MAC/IP
// leases and resource accounting, the dispatch of launches and
// terminations to nodes with retries and a launch timeout, the merging of
// node reports (push and poll) into the instances' statuses, and the
// events pushed up to cloudctl.
//
// All state lives in a bbolt database (see package state) mirrored in
// memory. Changes are serialized: each one is computed over the mirror,
// committed to the database, and only then applied to the mirror and
// answered, so every reply reflects committed state.
package cluster
