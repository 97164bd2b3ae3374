// Package chunkstore keeps walrus's EBS snapshots: content-addressed
// chunks (at most api.SnapshotChunkSize bytes each, named by the hex
// SHA-256 of their bytes) and one manifest per snapshot naming the chunks
// it is made of. Chunks are shared: a chunk stored once serves every
// snapshot that names it, and a reference count in its record says how
// many manifests do.
//
// # Layout
//
// Under the store's directory: chunkstore.db (bbolt: chunk records,
// manifests, the index of unreferenced chunks and running totals), tmp/
// (chunks being written) and chunks/<xx>/<sha256>, where xx is the first
// byte of the name in hex.
//
// # Durability
//
// A chunk is streamed into tmp/, checked against its name, fsynced,
// renamed into chunks/<xx>/ and that directory fsynced, and only then
// recorded. A manifest commits in one transaction with the reference
// counts of its chunks, and only if every chunk it names is recorded, so
// a committed snapshot never names a chunk that is not durable. Deleting
// a manifest drops, in one transaction, the records of the chunks no
// other manifest names; their files are removed after the commit.
//
// Open therefore repairs a crash at any point by removing what has no
// record: every file in tmp/, every file in chunks/ without a record. A
// record whose file is missing cannot come from a crash; Open reports it
// (ErrCorrupt). Chunks that no manifest ever named (their snapshot never
// committed) are dropped once older than the grace period, by Open and
// by Sweep.
//
// A put of a chunk and the removal of a released copy of the same chunk
// are ordered by a lock per first byte of the name, and the removal
// checks again, under that lock, that no record came back.
package chunkstore
