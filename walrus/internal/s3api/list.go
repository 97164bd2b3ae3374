package s3api

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/walrus/internal/acl"
	"github.com/koala-cloud/koala/walrus/internal/objstore"
)

// maxList is the most entries one listing returns.
const maxList = 1000

// intParam parses an optional non-negative integer parameter, capped at
// max, as S3 validates max-keys, max-uploads and max-parts.
func intParam(rq *request, name string, def, max int) (int, error) {
	v, ok := rq.q[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v[0])
	if err != nil {
		return 0, awserr.Newf("InvalidArgument", "Provided %s not an integer or within integer range", name).
			With("ArgumentName", name).With("ArgumentValue", v[0])
	}
	if n < 0 {
		return 0, awserr.Newf("InvalidArgument", "Argument %s must be an integer between 0 and 2147483647", name).
			With("ArgumentName", name).With("ArgumentValue", v[0])
	}
	return min(n, max), nil
}

// encoder returns the function that encodes keys in a listing, per the
// encoding-type parameter.
func encoder(rq *request) (func(string) string, string, error) {
	switch et := rq.q.Get("encoding-type"); et {
	case "":
		return func(s string) string { return s }, "", nil
	case "url":
		return urlEncode, "url", nil
	default:
		return nil, "", awserr.New("InvalidArgument", "Invalid Encoding Method specified in Request").
			With("ArgumentName", "encoding-type").With("ArgumentValue", et)
	}
}

// urlEncode percent-encodes every byte but the unreserved ones and '/'.
func urlEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// listing is what every listing reads first: the right to list, the
// page size (from the parameter maxName) and the key encoding.
type listing struct {
	max     int
	enc     func(string) string
	encType string
}

func (a *API) listing(rq *request, maxName string) (listing, error) {
	var l listing
	if _, err := a.bucketFor(rq, acl.Read); err != nil {
		return l, err
	}
	var err error
	if l.max, err = intParam(rq, maxName, maxList, maxList); err != nil {
		return l, err
	}
	l.enc, l.encType, err = encoder(rq)
	return l, err
}

// prefixes encodes common prefixes for a listing.
func (l listing) prefixes(ps []string) []xmlPrefix {
	var out []xmlPrefix
	for _, p := range ps {
		out = append(out, xmlPrefix{l.enc(p)})
	}
	return out
}

func storageClass(m objstore.Meta) string {
	if m.StorageClass == "" {
		return "STANDARD"
	}
	return m.StorageClass
}

func contents(o objstore.Object, enc func(string) string, owner bool) xmlContents {
	c := xmlContents{
		Key: enc(o.Key), LastModified: isoTime(o.Modified), ETag: `"` + o.ETag + `"`,
		Size: o.Size, StorageClass: storageClass(o.Meta),
	}
	if o.Checksum != nil {
		c.ChecksumAlgorithm, c.ChecksumType = o.Checksum.Algorithm, checksumType(o.Checksum)
	}
	if owner {
		c.Owner = &xmlOwner{o.Owner.ID, o.Owner.DisplayName}
	}
	return c
}

func (a *API) listObjects(rq *request, v2 bool) error {
	l, err := a.listing(rq, "max-keys")
	if err != nil {
		return err
	}
	max, enc, encType := l.max, l.enc, l.encType
	q := rq.q
	in := objstore.ListInput{Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"), Max: max}
	token := q.Get("continuation-token")
	switch {
	case !v2:
		in.After = q.Get("marker")
	case token != "":
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			return awserr.New("InvalidArgument", "The continuation token provided is incorrect").
				With("ArgumentName", "continuation-token")
		}
		in.After = string(raw)
	default:
		in.After = q.Get("start-after")
	}
	res, err := a.store.List(rq.ctx, rq.bucket, in)
	if err != nil {
		return err
	}
	var objs []xmlContents
	for _, o := range res.Objects {
		objs = append(objs, contents(o, enc, !v2 || q.Get("fetch-owner") == "true"))
	}
	prefixes := l.prefixes(res.Prefixes)
	if !v2 {
		marker := enc(in.After)
		out := listBucketResult{
			NS: ns, Name: rq.bucket, Prefix: enc(in.Prefix), Marker: &marker, MaxKeys: max,
			Delimiter: enc(in.Delimiter), IsTruncated: res.Truncated, Contents: objs,
			CommonPrefixes: prefixes, EncodingType: encType,
		}
		if res.Truncated && in.Delimiter != "" {
			out.NextMarker = enc(res.Last)
		}
		return writeXML(rq.w, out)
	}
	out := listBucketV2Result{
		NS: ns, Name: rq.bucket, Prefix: enc(in.Prefix), MaxKeys: max, KeyCount: len(objs) + len(prefixes),
		Delimiter: enc(in.Delimiter), IsTruncated: res.Truncated,
		StartAfter: enc(q.Get("start-after")), Contents: objs, CommonPrefixes: prefixes, EncodingType: encType,
	}
	if q.Has("continuation-token") {
		// Echoed even when empty, as S3 does.
		out.ContinuationToken = &token
	}
	if res.Truncated {
		out.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(res.Last))
	}
	return writeXML(rq.w, out)
}

// listVersions lists objects as S3 lists them in a bucket that never had
// versioning: each key has one version, "null".
func (a *API) listVersions(rq *request) error {
	l, err := a.listing(rq, "max-keys")
	if err != nil {
		return err
	}
	max, enc, encType := l.max, l.enc, l.encType
	q := rq.q
	in := objstore.ListInput{Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"), After: q.Get("key-marker"), Max: max}
	res, err := a.store.List(rq.ctx, rq.bucket, in)
	if err != nil {
		return err
	}
	out := listVersionsResult{
		NS: ns, Name: rq.bucket, Prefix: enc(in.Prefix), KeyMarker: enc(in.After), VersionIDMarker: q.Get("version-id-marker"),
		MaxKeys: max, Delimiter: enc(in.Delimiter), IsTruncated: res.Truncated, EncodingType: encType,
	}
	for _, o := range res.Objects {
		out.Versions = append(out.Versions, xmlVersion{
			Key: enc(o.Key), VersionID: "null", IsLatest: true, LastModified: isoTime(o.Modified),
			ETag: `"` + o.ETag + `"`, Size: o.Size, Owner: xmlOwner{o.Owner.ID, o.Owner.DisplayName},
			StorageClass: storageClass(o.Meta),
		})
	}
	out.CommonPrefixes = l.prefixes(res.Prefixes)
	if res.Truncated {
		out.NextKeyMarker, out.NextVersionIDMarker = enc(res.Last), "null"
	}
	return writeXML(rq.w, out)
}
