// Package state declares clusterctl's database: its buckets (schema.go)
// and the records they hold. Every write that a reply depends on is
// committed before the reply; the cluster package owns the writing.
package state
