// Package chunkapi serves walrus's chunk store over the internal API:
// under api.PathChunks, PUT, GET and HEAD of a chunk by its SHA-256 and
// GET of the store's totals; under api.PathSnapshotManifests, PUT, GET
// and DELETE of a snapshot's manifest. It does not check signatures: the
// caller puts it behind the component-key guard. Errors are answered in
// the JSON form of pkg/api, with codes from one table.
package chunkapi
