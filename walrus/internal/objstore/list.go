package objstore

import (
	"bytes"
	"context"

	"github.com/koala-cloud/koala/pkg/store"
)

// ListInput selects the keys of a listing.
type ListInput struct {
	Prefix    string
	Delimiter string
	// After lists only keys that sort after it (marker, start-after, or a
	// continuation token's key). A common prefix equal to, or a prefix of,
	// After is not listed again.
	After string
	// Max bounds objects plus common prefixes returned.
	Max int
}

// ListResult is one page of a listing.
type ListResult struct {
	Objects   []Object
	Prefixes  []string
	Truncated bool
	// Last is the last key or common prefix returned.
	Last string
}

// List lists a bucket's objects in key order (UTF-8 bytes), rolling keys
// that contain Delimiter after Prefix up into common prefixes.
func (s *Store) List(ctx context.Context, bucket string, in ListInput) (ListResult, error) {
	var res ListResult
	err := s.db.View(func(tx *store.Tx) error {
		objs, err := nested(tx, bktObjects, bucket)
		if err != nil || in.Max == 0 {
			// S3 answers max-keys=0 with an empty, untruncated page.
			return err
		}
		prefix, delim, after := []byte(in.Prefix), []byte(in.Delimiter), []byte(in.After)
		c := objs.Cursor()
		start := prefix
		if bytes.Compare(after, start) >= 0 {
			start = after
		}
		k, v := c.Seek(start)
		if k != nil && len(after) > 0 && bytes.Equal(k, after) {
			k, v = c.Next()
		}
		n := 0
		for ; k != nil && bytes.HasPrefix(k, prefix); n++ {
			if n >= in.Max {
				res.Truncated = true
				return nil
			}
			if len(delim) > 0 {
				if i := bytes.Index(k[len(prefix):], delim); i >= 0 {
					cp := k[:len(prefix)+i+len(delim)]
					next := successor(cp)
					if bytes.HasPrefix(after, cp) {
						n--
					} else {
						res.Prefixes = append(res.Prefixes, string(cp))
						res.Last = string(cp)
					}
					if next == nil {
						return nil
					}
					k, v = c.Seek(next)
					continue
				}
			}
			var o Object
			if err := store.Decode(v, &o); err != nil {
				return err
			}
			o.Bucket, o.Key = bucket, string(k)
			res.Objects = append(res.Objects, o)
			res.Last = o.Key
			k, v = c.Next()
		}
		return nil
	})
	return res, err
}

// successor returns the smallest key greater than every key that starts
// with p, or nil when there is none.
func successor(p []byte) []byte {
	s := bytes.Clone(p)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] < 0xff {
			s[i]++
			return s[:i+1]
		}
	}
	return nil
}
