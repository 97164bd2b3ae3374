package objstore

import "github.com/koala-cloud/koala/pkg/store"

// The top-level bbolt buckets of a walrus store.
const (
	bktBuckets = "buckets" // bucket name -> Bucket
	bktOwners  = "owners"  // owner id + "/" + bucket name -> empty: per-account bucket index
	bktObjects = "objects" // nested per bucket: key -> Object
	bktUploads = "uploads" // nested per bucket: key + 0x00 + upload id -> Upload
	bktParts   = "parts"   // nested per upload id: part number (4 bytes BE) -> Part
	bktFiles   = "files"   // file id -> empty: files a committed record references
	bktGC      = "gc"      // file id -> empty: files released, to unlink
	bktInline  = "inline"  // chunk id -> data: small objects' data, kept with their records
)

// Version 2 keeps small objects' data in bktInline, which version 1 would
// look for in files.
var schema = store.Schema{
	Version: 2,
	Buckets: []string{bktBuckets, bktOwners, bktObjects, bktUploads, bktParts, bktFiles, bktGC, bktInline},
}
