// Package imagecache keeps decrypted machine images on walrus's disk, so
// that nodes fetch an image's plain bytes without walrus decrypting its
// bundle again: entries are keyed by the bundle's location and manifest
// digest (a re-uploaded manifest is a new entry), filled once however many
// callers ask at the same time, bounded in total size with least recently
// used eviction that never evicts an image being read, and indexed in a
// small database so the cache survives a restart.
package imagecache
