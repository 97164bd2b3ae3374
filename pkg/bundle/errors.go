package bundle

import "errors"

// Sentinel errors, returned wrapped with details. The comment on each
// suggests the AWS error code the API edge answers with.
var (
	// ErrMalformedManifest reports a manifest that is not a well-formed
	// 2007-10-10 bundle manifest: XML errors, missing or repeated elements,
	// bad numbers or hex, unsafe part file names, more than
	// MaxManifestSize bytes. InvalidManifest.
	ErrMalformedManifest = errors.New("malformed manifest")

	// ErrBadSignature reports a manifest whose signature does not verify
	// with the given certificate. InvalidManifest (or AuthFailure).
	ErrBadSignature = errors.New("manifest signature does not verify")

	// ErrKeyDecrypt reports an encrypted key or IV that the private key
	// cannot decrypt into a 128-bit hex value, or, from Open, a key and IV
	// under which the first part does not decrypt to a gzip stream (the
	// way a wrong key shows when the decryption hides padding failures).
	// InvalidManifest.
	ErrKeyDecrypt = errors.New("cannot decrypt the bundle key")

	// ErrPartDigest reports a part whose SHA-1 differs from the manifest's.
	// The part was corrupted or replaced in storage. InvalidManifest, or an
	// image state reason at launch.
	ErrPartDigest = errors.New("part digest mismatch")

	// ErrImageDigest reports a decrypted image that does not match the
	// manifest: the tar stream's SHA-1 differs, its length differs from
	// the manifest's size, or the stream is not a gzipped tar with one
	// regular file. The parts match their digests, so the bundle was made
	// wrong. InvalidManifest, or an image state reason at launch.
	ErrImageDigest = errors.New("image digest mismatch")

	// ErrMissingPart reports a part the PartSource does not have (it
	// returned an error wrapping ErrMissingPart or fs.ErrNotExist).
	// InvalidManifest.
	ErrMissingPart = errors.New("missing part")
)
