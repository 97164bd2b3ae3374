package objstore

import (
	"errors"
	"time"

	"github.com/koala-cloud/koala/walrus/internal/acl"
)

// Errors the store returns; the S3 edge maps them to codes.
var (
	ErrNoSuchBucket     = errors.New("no such bucket")
	ErrBucketExists     = errors.New("bucket already exists")
	ErrBucketOwned      = errors.New("bucket already owned by you")
	ErrBucketNotEmpty   = errors.New("bucket not empty")
	ErrTooManyBuckets   = errors.New("too many buckets")
	ErrNoSuchKey        = errors.New("no such key")
	ErrNoSuchUpload     = errors.New("no such upload")
	ErrIncompleteBody   = errors.New("body shorter than content length")
	ErrTooLarge         = errors.New("body longer than content length")
	ErrInvalidPart      = errors.New("invalid part")
	ErrInvalidPartOrder = errors.New("parts not in ascending order")
	ErrEntityTooSmall   = errors.New("part smaller than the minimum size")
	ErrNoSuchPart       = errors.New("no such part")
)

// Bucket is a bucket's record.
type Bucket struct {
	Name  string    `json:"-"`
	Owner acl.Owner `json:"owner"`
	// Account is the owner's 12-digit account ID.
	Account string     `json:"account"`
	Created time.Time  `json:"created"`
	Region  string     `json:"region"`
	ACL     acl.Policy `json:"acl"`
}

// Meta is what a client sets on an object besides its data: the stored
// HTTP headers and the x-amz-meta-* pairs.
type Meta struct {
	ContentType        string            `json:"ctype,omitempty"`
	ContentEncoding    string            `json:"cenc,omitempty"`
	ContentDisposition string            `json:"cdisp,omitempty"`
	ContentLanguage    string            `json:"clang,omitempty"`
	CacheControl       string            `json:"cache,omitempty"`
	Expires            string            `json:"expires,omitempty"`
	WebsiteRedirect    string            `json:"redirect,omitempty"`
	StorageClass       string            `json:"class,omitempty"`
	User               map[string]string `json:"user,omitempty"` // lower-case name without the x-amz-meta- prefix
	Tagging            string            `json:"tags,omitempty"`
}

// Checksum is an additional checksum of an object (S3's flexible
// checksums): the algorithm (CRC32, CRC32C, CRC64NVME, SHA1, SHA256), its
// base64 value, and whether it covers the full object or is composed of
// part checksums ("COMPOSITE", value suffixed -N).
type Checksum struct {
	Algorithm string `json:"alg"`
	Value     string `json:"val"`
	Type      string `json:"type,omitempty"`
}

// Chunk is one data file of an object: the whole object, one part of a
// multipart object, or one segment of a large object (see writeData). A
// small object's one chunk is inline: its data is in the database, with
// the record, not in a file.
type Chunk struct {
	ID       string    `json:"id"`
	Size     int64     `json:"size"`
	Inline   bool      `json:"in,omitempty"`
	Checksum *Checksum `json:"sum,omitempty"`
	// Part is the part number the chunk was uploaded as, 0 for the data
	// of a simple PUT (one chunk, or its segments).
	Part int `json:"n,omitempty"`
}

// Object is an object's record.
type Object struct {
	Bucket   string     `json:"-"`
	Key      string     `json:"-"`
	Size     int64      `json:"size"`
	ETag     string     `json:"etag"` // without quotes
	Modified time.Time  `json:"mtime"`
	Owner    acl.Owner  `json:"owner"`
	ACL      acl.Policy `json:"acl"`
	Meta     Meta       `json:"meta"`
	Checksum *Checksum  `json:"sum,omitempty"`
	Chunks   []Chunk    `json:"chunks"`
	// Parts is the number of parts of a multipart object, 0 otherwise.
	Parts int `json:"parts,omitempty"`
	// Upload is the ID of the multipart upload that made the object, so
	// that a retried CompleteMultipartUpload succeeds again.
	Upload string `json:"upload,omitempty"`
}

// fileIDs returns the ids of the object's data files.
func (o *Object) fileIDs() []string { return fileIDs(o.Chunks) }

// fileIDs returns the ids of the chunks that are files, not inline.
func fileIDs(chunks []Chunk) []string {
	ids := make([]string, 0, len(chunks))
	for _, c := range chunks {
		if !c.Inline {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// Upload is an in-progress multipart upload.
type Upload struct {
	ID        string     `json:"-"`
	Bucket    string     `json:"-"`
	Key       string     `json:"-"`
	Initiated time.Time  `json:"initiated"`
	Owner     acl.Owner  `json:"owner"`
	ACL       acl.Policy `json:"acl"`
	Meta      Meta       `json:"meta"`
	// ChecksumAlgorithm is the checksum each part carries, if any.
	ChecksumAlgorithm string `json:"sumalg,omitempty"`
	ChecksumType      string `json:"sumtype,omitempty"`
}

// Part is an uploaded part of a multipart upload.
type Part struct {
	Number   int       `json:"-"`
	ETag     string    `json:"etag"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"mtime"`
	FileID   string    `json:"id"`
	Checksum *Checksum `json:"sum,omitempty"`
}
