// Package imagecache keeps the node's copies of decrypted images —
// kernels, ramdisks and machine images — fetched from walrus, checked
// against their SHA-256 and stored once per digest. Concurrent requests
// for one image share one download. The cache is bounded: least recently
// used images go first, never one an instance still uses (its disk is an
// overlay on the cached file).
package imagecache
