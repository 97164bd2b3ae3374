package s3api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/walrus/internal/objstore"
)

// etagMatches reports whether an If-Match style list names etag.
func etagMatches(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		t = strings.TrimPrefix(t, "W/")
		if t == "*" || strings.Trim(t, `"`) == etag {
			return true
		}
	}
	return false
}

// httpTime parses an HTTP date; ok is false for a bad or absent one,
// which S3 ignores.
func httpTime(v string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	t, err := http.ParseTime(v)
	return t, err == nil
}

// conditions are the four preconditions of a read, or of a copy source.
type conditions struct {
	ifMatch, ifNoneMatch, ifModifiedSince, ifUnmodifiedSince string
	// failNotModified is the error for the conditions that, on a read,
	// answer 304 Not Modified; a copy answers 412 for them.
	failNotModified *awserr.Error
}

func readConditions(h http.Header) conditions {
	return conditions{
		ifMatch: h.Get("If-Match"), ifNoneMatch: h.Get("If-None-Match"),
		ifModifiedSince: h.Get("If-Modified-Since"), ifUnmodifiedSince: h.Get("If-Unmodified-Since"),
		failNotModified: awserr.New("NotModified", ""),
	}
}

func copyConditions(h http.Header) conditions {
	return conditions{
		ifMatch: h.Get("X-Amz-Copy-Source-If-Match"), ifNoneMatch: h.Get("X-Amz-Copy-Source-If-None-Match"),
		ifModifiedSince: h.Get("X-Amz-Copy-Source-If-Modified-Since"), ifUnmodifiedSince: h.Get("X-Amz-Copy-Source-If-Unmodified-Since"),
		failNotModified: awserr.New("PreconditionFailed", ""),
	}
}

// check evaluates the conditions against o in the order RFC 7232 and S3
// use: If-Match, else If-Unmodified-Since; then If-None-Match, else
// If-Modified-Since.
func (c conditions) check(o *objstore.Object) error {
	mod := o.Modified.Truncate(time.Second)
	failed := awserr.New("PreconditionFailed", "")
	if c.ifMatch != "" {
		if !etagMatches(c.ifMatch, o.ETag) {
			return failed.With("Condition", "If-Match")
		}
	} else if t, ok := httpTime(c.ifUnmodifiedSince); ok && mod.After(t) {
		return failed.With("Condition", "If-Unmodified-Since")
	}
	if c.ifNoneMatch != "" {
		if etagMatches(c.ifNoneMatch, o.ETag) {
			return c.failNotModified
		}
	} else if t, ok := httpTime(c.ifModifiedSince); ok && !mod.After(t) {
		return c.failNotModified
	}
	return nil
}

// byteRange is a resolved range of an object.
type byteRange struct{ start, length int64 }

// parseRange resolves a Range header against size. ok is false when the
// header is absent or not one well-formed byte range, in which case S3
// serves the whole object. An unsatisfiable range is InvalidRange.
func parseRange(v string, size int64) (r byteRange, ok bool, err error) {
	spec, found := strings.CutPrefix(strings.TrimSpace(v), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return r, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return r, false, nil
	}
	invalid := func() (byteRange, bool, error) {
		return r, false, awserr.New("InvalidRange", "").
			With("RangeRequested", v).With("ActualObjectSize", strconv.FormatInt(size, 10))
	}
	if first == "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return r, false, nil
		}
		if n == 0 || size == 0 {
			return invalid()
		}
		n = min(n, size)
		return byteRange{size - n, n}, true, nil
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 {
		return r, false, nil
	}
	end := size - 1
	if last != "" {
		e, err := strconv.ParseInt(last, 10, 64)
		if err != nil || e < start {
			return r, false, nil
		}
		end = min(e, size-1)
	}
	if start >= size {
		return invalid()
	}
	return byteRange{start, end - start + 1}, true, nil
}

// writeConditions returns the precondition of a conditional write or
// delete (If-Match, If-None-Match, each * or ETags), or nil when the
// request has none.
// missingOK is whether If-Match lets an absent object through (deletes)
// or answers NoSuchKey (writes).
func writeConditions(h http.Header, missingOK bool) objstore.Precondition {
	match, noneMatch := h.Get("If-Match"), h.Get("If-None-Match")
	if match == "" && noneMatch == "" {
		return nil
	}
	return func(old *objstore.Object) error {
		if noneMatch != "" && old != nil && etagMatches(noneMatch, old.ETag) {
			return awserr.New("PreconditionFailed", "").With("Condition", "If-None-Match")
		}
		if match == "" {
			return nil
		}
		switch {
		case old == nil && missingOK:
			return nil
		case old == nil:
			return awserr.New("NoSuchKey", "")
		case !etagMatches(match, old.ETag):
			return awserr.New("PreconditionFailed", "").With("Condition", "If-Match")
		}
		return nil
	}
}
