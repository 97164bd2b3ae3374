// Package objstore keeps walrus's buckets, objects and multipart uploads:
// metadata and small objects' data in bbolt, other object data in files.
//
// # Durability
//
// Object data is streamed into tmp/<id>, fsynced, and only then committed:
// one bbolt transaction records the object's metadata and marks <id> live in
// the files bucket. Before each group commit tmp/ itself is fsynced, so the
// entries of the files it names survive a power cut on any filesystem. After the commit the file is renamed to data/<xx>/<id>.
// Start-up recovery therefore needs to look only at tmp/: a file whose id is
// live finishes its rename, any other file is a leftover of an interrupted
// write and is removed. Data that a commit stops referencing (overwrite,
// delete, abort) is queued in the gc bucket in the same transaction and
// unlinked afterwards, so a crash between the two never leaks a file.
//
// Objects of up to 32 KiB are the exception: their data is kept in the
// inline bucket, put and deleted in the same transaction as their record,
// so there is no file to recover.
//
// An object's data is a sequence of chunks: one file for an object put
// whole, one per part for a multipart object, and for a large simple PUT
// consecutive segments of 16 MiB, written by two goroutines at once while
// the body arrives in order (one thread filling one file's page cache is
// slower than the disk on some machines). Readers see one byte stream.
//
// On-disk names are random ids, never derived from keys, so keys cannot
// traverse paths. A reader pins the ids it reads: a file released while
// pinned is unlinked when its last reader lets go, so a GET that overlaps an
// overwrite streams the old object whole.
package objstore
