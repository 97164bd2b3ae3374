// Package store wraps bbolt for the daemons' state: a schema that declares
// every top-level bucket and a version in one place, versioned JSON values,
// View/Update transactions, and group commit.
//
// Group commit (DB.Commit) lets many concurrent writers share one fsync
// without the fixed delay of bbolt's Batch: while one transaction commits,
// new work queues up, and the next transaction takes all of it. A lone
// writer pays no added latency; sixteen pay roughly one fsync between them.
package store
