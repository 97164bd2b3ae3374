package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/koala-cloud/koala/pkg/store"
	bolt "go.etcd.io/bbolt"
)

func uploadKey(key, id string) []byte { return append(append([]byte(key), 0), id...) }

func splitUploadKey(k []byte) (key, id string) {
	i := bytes.LastIndexByte(k, 0)
	if i < 0 {
		return string(k), ""
	}
	return string(k[:i]), string(k[i+1:])
}

func partKey(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

// newUploadID returns an id that sorts by creation time.
func newUploadID(t time.Time) string {
	return fmt.Sprintf("%016x", uint64(t.UnixNano())) + newID()[:16]
}

// CreateUpload starts a multipart upload and returns it with its ID.
func (s *Store) CreateUpload(ctx context.Context, u Upload) (Upload, error) {
	u.Initiated = s.now().UTC().Truncate(time.Millisecond)
	u.ID = newUploadID(u.Initiated)
	err := s.db.Commit(func(tx *store.Tx) error {
		ups, err := nested(tx, bktUploads, u.Bucket)
		if err != nil {
			return err
		}
		parts, _ := tx.Bucket(bktParts)
		if _, err := parts.CreateBucketIfNotExists([]byte(u.ID)); err != nil {
			return err
		}
		return store.PutIn(ups, uploadKey(u.Key, u.ID), u)
	})
	return u, err
}

// GetUpload returns an upload in progress.
func (s *Store) GetUpload(ctx context.Context, bucket, key, id string) (Upload, error) {
	var u Upload
	err := s.db.View(func(tx *store.Tx) error { return getUpload(tx, bucket, key, id, &u) })
	return u, err
}

func getUpload(tx *store.Tx, bucket, key, id string, u *Upload) error {
	ups, err := nested(tx, bktUploads, bucket)
	if err != nil {
		return err
	}
	if err := store.GetIn(ups, uploadKey(key, id), u); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("upload %s: %w", id, ErrNoSuchUpload)
		}
		return err
	}
	u.ID, u.Bucket, u.Key = id, bucket, key
	return nil
}

func partsOf(tx *store.Tx, id string) (*bolt.Bucket, error) {
	parts, _ := tx.Bucket(bktParts)
	b := parts.Bucket([]byte(id))
	if b == nil {
		return nil, fmt.Errorf("upload %s: %w", id, ErrNoSuchUpload)
	}
	return b, nil
}

// PartInput describes a part to write.
type PartInput struct {
	Bucket, Key, UploadID string
	Number                int
	Body                  io.Reader
	Size                  int64
	// Verify runs once the data is durable and before the commit.
	Verify func(p *Part) error
}

// PutPart stores a part, replacing an earlier part with the same number.
func (s *Store) PutPart(ctx context.Context, in PartInput) (Part, error) {
	if _, err := s.GetUpload(ctx, in.Bucket, in.Key, in.UploadID); err != nil {
		return Part{}, err
	}
	// A part is one file: a client uploads large objects' parts in
	// parallel already.
	w, err := s.writeData(ctx, in.Body, in.Size, false)
	if err != nil {
		return Part{}, err
	}
	id := w.chunks[0].ID
	p := Part{Number: in.Number, ETag: w.md5, Size: w.size, FileID: id, Modified: s.now().UTC().Truncate(time.Millisecond)}
	if in.Verify != nil {
		if err := in.Verify(&p); err != nil {
			s.files.discard(id)
			return Part{}, err
		}
	}
	err = s.commit(func(tx *store.Tx) (live, released []string, err error) {
		var u Upload
		if err := getUpload(tx, in.Bucket, in.Key, in.UploadID, &u); err != nil {
			return nil, nil, err
		}
		parts, err := partsOf(tx, in.UploadID)
		if err != nil {
			return nil, nil, err
		}
		var old Part
		switch err := store.GetIn(parts, partKey(p.Number), &old); {
		case err == nil:
			released = []string{old.FileID}
		case !errors.Is(err, store.ErrNotFound):
			return nil, nil, err
		}
		return []string{p.FileID}, released, store.PutIn(parts, partKey(p.Number), p)
	})
	if err != nil {
		s.files.discard(id)
		return Part{}, err
	}
	return p, nil
}

// Parts lists an upload's parts with numbers above after, at most max.
func (s *Store) Parts(ctx context.Context, bucket, key, id string, after, max int) (parts []Part, truncated bool, err error) {
	err = s.db.View(func(tx *store.Tx) error {
		var u Upload
		if err := getUpload(tx, bucket, key, id, &u); err != nil {
			return err
		}
		b, err := partsOf(tx, id)
		if err != nil {
			return err
		}
		c := b.Cursor()
		for k, v := c.Seek(partKey(after + 1)); k != nil; k, v = c.Next() {
			if len(parts) >= max {
				truncated = true
				break
			}
			var p Part
			if err := store.Decode(v, &p); err != nil {
				return err
			}
			p.Number = int(binary.BigEndian.Uint32(k))
			parts = append(parts, p)
		}
		return nil
	})
	return parts, truncated, err
}

// CompletePart names a part, as CompleteMultipartUpload lists it.
type CompletePart struct {
	Number int
	ETag   string
	// Checksum is the part checksum the client lists, if any.
	Checksum string
}

// CompleteInput describes how to complete an upload.
type CompleteInput struct {
	Bucket, Key, UploadID string
	Parts                 []CompletePart
	// MinPartSize is the smallest size allowed for every part but the last.
	MinPartSize int64
	// Finish, when set, checks the chosen parts and may set the object's
	// checksum; it runs inside the commit.
	Finish func(u *Upload, parts []Part, o *Object) error
	// Precondition, when set, decides at the commit whether the object
	// may replace the one at its key.
	Precondition Precondition
}

// Complete assembles the listed parts into the object, in one commit: the
// parts' files become the object's data, unlisted parts are released.
func (s *Store) Complete(ctx context.Context, in CompleteInput) (Object, error) {
	var o Object
	err := s.commit(func(tx *store.Tx) (live, released []string, err error) {
		var u Upload
		if err := getUpload(tx, in.Bucket, in.Key, in.UploadID, &u); err != nil {
			// A retry of a Complete that succeeded gets the same answer,
			// as long as the object it made is still there.
			if errors.Is(err, ErrNoSuchUpload) && getObject(tx, in.Bucket, in.Key, &o) == nil && o.Upload == in.UploadID {
				return nil, nil, nil
			}
			return nil, nil, err
		}
		pb, err := partsOf(tx, in.UploadID)
		if err != nil {
			return nil, nil, err
		}
		for i := 1; i < len(in.Parts); i++ {
			if in.Parts[i].Number <= in.Parts[i-1].Number {
				return nil, nil, ErrInvalidPartOrder
			}
		}
		chosen := make([]Part, 0, len(in.Parts))
		used := map[string]bool{}
		sums := md5.New()
		var size int64
		for i, cp := range in.Parts {
			var p Part
			if err := store.GetIn(pb, partKey(cp.Number), &p); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return nil, nil, fmt.Errorf("%w: part %d was not uploaded", ErrInvalidPart, cp.Number)
				}
				return nil, nil, err
			}
			p.Number = cp.Number
			if strings.Trim(cp.ETag, `"`) != p.ETag {
				return nil, nil, fmt.Errorf("%w: part %d has another ETag", ErrInvalidPart, cp.Number)
			}
			if i < len(in.Parts)-1 && p.Size < in.MinPartSize {
				return nil, nil, fmt.Errorf("%w: part %d is %d bytes", ErrEntityTooSmall, cp.Number, p.Size)
			}
			raw, _ := hex.DecodeString(p.ETag)
			sums.Write(raw)
			size += p.Size
			used[p.FileID] = true
			chosen = append(chosen, p)
		}
		o = Object{
			Bucket: in.Bucket, Key: in.Key, Size: size,
			ETag:     fmt.Sprintf("%s-%d", hex.EncodeToString(sums.Sum(nil)), len(chosen)),
			Modified: s.now().UTC().Truncate(time.Millisecond),
			Owner:    u.Owner, ACL: u.ACL, Meta: u.Meta, Parts: len(chosen), Upload: in.UploadID,
		}
		for _, p := range chosen {
			o.Chunks = append(o.Chunks, Chunk{ID: p.FileID, Size: p.Size, Checksum: p.Checksum, Part: p.Number})
		}
		if in.Finish != nil {
			if err := in.Finish(&u, chosen, &o); err != nil {
				return nil, nil, err
			}
		}
		err = pb.ForEach(func(_, v []byte) error {
			var p Part
			if err := store.Decode(v, &p); err != nil {
				return err
			}
			if !used[p.FileID] {
				released = append(released, p.FileID)
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		if err := dropUpload(tx, in.Bucket, in.Key, in.UploadID); err != nil {
			return nil, nil, err
		}
		objs, err := nested(tx, bktObjects, in.Bucket)
		if err != nil {
			return nil, nil, err
		}
		old, err := current(objs, in.Key)
		if err != nil {
			return nil, nil, err
		}
		if in.Precondition != nil {
			if err := in.Precondition(old); err != nil {
				return nil, nil, err
			}
		}
		dropped, err := dropData(tx, old)
		if err != nil {
			return nil, nil, err
		}
		return nil, append(released, dropped...), store.PutIn(objs, []byte(in.Key), o)
	})
	return o, err
}

// dropUpload removes an upload's record and its part index (not the
// part files).
func dropUpload(tx *store.Tx, bucket, key, id string) error {
	ups, err := nested(tx, bktUploads, bucket)
	if err != nil {
		return err
	}
	if err := ups.Delete(uploadKey(key, id)); err != nil {
		return err
	}
	parts, _ := tx.Bucket(bktParts)
	if err := parts.DeleteBucket([]byte(id)); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
		return err
	}
	return nil
}

// dropParts removes an upload's part index and returns its files.
func dropParts(tx *store.Tx, id string) ([]string, error) {
	pb, err := partsOf(tx, id)
	if errors.Is(err, ErrNoSuchUpload) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	err = pb.ForEach(func(_, v []byte) error {
		var p Part
		if err := store.Decode(v, &p); err != nil {
			return err
		}
		ids = append(ids, p.FileID)
		return nil
	})
	if err != nil {
		return nil, err
	}
	parts, _ := tx.Bucket(bktParts)
	return ids, parts.DeleteBucket([]byte(id))
}

// Abort ends an upload and releases its parts.
func (s *Store) Abort(ctx context.Context, bucket, key, id string) error {
	return s.commit(func(tx *store.Tx) (live, released []string, err error) {
		var u Upload
		if err := getUpload(tx, bucket, key, id, &u); err != nil {
			return nil, nil, err
		}
		ids, err := dropParts(tx, id)
		if err != nil {
			return nil, nil, err
		}
		ups, err := nested(tx, bktUploads, bucket)
		if err != nil {
			return nil, nil, err
		}
		return nil, ids, ups.Delete(uploadKey(key, id))
	})
}

// UploadsInput selects uploads to list.
type UploadsInput struct {
	Prefix, Delimiter         string
	KeyMarker, UploadIDMarker string
	Max                       int
}

// UploadsResult is one page of uploads.
type UploadsResult struct {
	Uploads                     []Upload
	Prefixes                    []string
	Truncated                   bool
	NextKeyMarker, NextUploadID string
}

// Uploads lists a bucket's uploads in progress by key, then by time.
func (s *Store) Uploads(ctx context.Context, bucket string, in UploadsInput) (UploadsResult, error) {
	var res UploadsResult
	err := s.db.View(func(tx *store.Tx) error {
		ups, err := nested(tx, bktUploads, bucket)
		if err != nil {
			return err
		}
		prefix, delim := []byte(in.Prefix), []byte(in.Delimiter)
		c := ups.Cursor()
		var k, v []byte
		switch {
		case in.KeyMarker != "" && in.UploadIDMarker != "":
			k, v = c.Seek(uploadKey(in.KeyMarker, in.UploadIDMarker))
			if k != nil && bytes.Equal(k, uploadKey(in.KeyMarker, in.UploadIDMarker)) {
				k, v = c.Next()
			}
		case in.KeyMarker != "":
			// Everything after every upload of the marker key.
			k, v = c.Seek(append([]byte(in.KeyMarker), 1))
		default:
			k, v = c.Seek(prefix)
		}
		n := 0
		for ; k != nil; n++ {
			key, id := splitUploadKey(k)
			if !strings.HasPrefix(key, in.Prefix) {
				if key < in.Prefix {
					k, v = c.Seek(prefix)
					n--
					continue
				}
				return nil
			}
			if n >= in.Max {
				res.Truncated = true
				return nil
			}
			if len(delim) > 0 {
				if i := bytes.Index([]byte(key[len(prefix):]), delim); i >= 0 {
					cp := key[:len(prefix)+i+len(delim)]
					if strings.HasPrefix(in.KeyMarker, cp) {
						n--
					} else {
						res.Prefixes = append(res.Prefixes, cp)
						res.NextKeyMarker, res.NextUploadID = cp, ""
					}
					next := successor([]byte(cp))
					if next == nil {
						return nil
					}
					k, v = c.Seek(next)
					continue
				}
			}
			var u Upload
			if err := store.Decode(v, &u); err != nil {
				return err
			}
			u.ID, u.Bucket, u.Key = id, bucket, key
			res.Uploads = append(res.Uploads, u)
			res.NextKeyMarker, res.NextUploadID = key, id
			k, v = c.Next()
		}
		return nil
	})
	return res, err
}
