package s3api

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/walrus/internal/acl"
	"github.com/koala-cloud/koala/walrus/internal/objstore"
)

// maxUserMeta bounds the x-amz-meta-* names and values of one object.
const maxUserMeta = 2 << 10

var storageClasses = map[string]bool{
	"STANDARD": true, "REDUCED_REDUNDANCY": true, "STANDARD_IA": true, "ONEZONE_IA": true,
	"INTELLIGENT_TIERING": true, "GLACIER": true, "DEEP_ARCHIVE": true, "GLACIER_IR": true,
	"OUTPOSTS": true, "SNOW": true, "EXPRESS_ONEZONE": true,
}

// metaFromHeaders reads the stored headers and user metadata of a PUT,
// copy with REPLACE, or CreateMultipartUpload.
func metaFromHeaders(h http.Header) (objstore.Meta, error) {
	m := objstore.Meta{
		ContentType:        h.Get("Content-Type"),
		ContentDisposition: h.Get("Content-Disposition"),
		ContentLanguage:    h.Get("Content-Language"),
		CacheControl:       h.Get("Cache-Control"),
		Expires:            h.Get("Expires"),
		WebsiteRedirect:    h.Get("X-Amz-Website-Redirect-Location"),
		Tagging:            h.Get("X-Amz-Tagging"),
	}
	m.ContentEncoding = withoutAWSChunked(h.Get("Content-Encoding"))
	if sc := h.Get("X-Amz-Storage-Class"); sc != "" {
		if !storageClasses[sc] {
			return m, awserr.New("InvalidStorageClass", "")
		}
		if sc != "STANDARD" {
			m.StorageClass = sc
		}
	}
	if sse := h.Get("X-Amz-Server-Side-Encryption"); sse != "" || h.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") != "" {
		return m, notImplemented("Server-side encryption")
	}
	size := 0
	for name, vals := range h {
		lower := strings.ToLower(name)
		key, ok := strings.CutPrefix(lower, "x-amz-meta-")
		if !ok {
			continue
		}
		if m.User == nil {
			m.User = map[string]string{}
		}
		v := strings.Join(vals, ",")
		m.User[key] = v
		size += len(key) + len(v)
	}
	if size > maxUserMeta {
		return m, awserr.New("MetadataTooLarge", "").With("MaxSizeAllowed", strconv.Itoa(maxUserMeta))
	}
	if m.Tagging != "" {
		if _, err := parseTagQuery(m.Tagging); err != nil {
			return m, err
		}
	}
	return m, nil
}

// withoutAWSChunked removes the aws-chunked coding, a transfer detail of
// the request, from a Content-Encoding value; any other value is kept as
// the client wrote it.
func withoutAWSChunked(v string) string {
	parts := strings.Split(v, ",")
	kept := parts[:0]
	for _, e := range parts {
		if !strings.EqualFold(strings.TrimSpace(e), "aws-chunked") {
			kept = append(kept, e)
		}
	}
	if len(kept) == len(parts) {
		return v
	}
	for i := range kept {
		kept[i] = strings.TrimSpace(kept[i])
	}
	return strings.Join(kept, ",")
}

// setObjectHeaders sets the headers GET and HEAD return for o.
func setObjectHeaders(h http.Header, o *objstore.Object) {
	h.Set("ETag", `"`+o.ETag+`"`)
	h.Set("Last-Modified", o.Modified.UTC().Format(http.TimeFormat))
	m := o.Meta
	ct := m.ContentType
	if ct == "" {
		ct = "binary/octet-stream"
	}
	h.Set("Content-Type", ct)
	for name, v := range map[string]string{
		"Content-Encoding": m.ContentEncoding, "Content-Disposition": m.ContentDisposition,
		"Content-Language": m.ContentLanguage, "Cache-Control": m.CacheControl, "Expires": m.Expires,
		"X-Amz-Website-Redirect-Location": m.WebsiteRedirect, "X-Amz-Storage-Class": m.StorageClass,
	} {
		if v != "" {
			h.Set(name, v)
		}
	}
	for k, v := range m.User {
		h["X-Amz-Meta-"+k] = []string{v}
	}
	if m.Tagging != "" {
		if tags, err := parseTagQuery(m.Tagging); err == nil {
			h.Set("X-Amz-Tagging-Count", strconv.Itoa(len(tags)))
		}
	}
}

// responseOverrides maps response-* query parameters to the headers they
// set on a GET.
var responseOverrides = map[string]string{
	"response-content-type":        "Content-Type",
	"response-content-language":    "Content-Language",
	"response-expires":             "Expires",
	"response-cache-control":       "Cache-Control",
	"response-content-disposition": "Content-Disposition",
	"response-content-encoding":    "Content-Encoding",
}

func (a *API) getObject(rq *request) error {
	b, err := a.store.Bucket(rq.ctx, rq.bucket)
	if err != nil {
		return err
	}
	h := rq.w.Header()
	for p := range responseOverrides {
		if rq.q.Has(p) && rq.account == nil {
			return awserr.New("InvalidRequest", "Request specific response headers cannot be used for anonymous GET requests.")
		}
	}
	partNumber := 0
	if v := rq.q.Get("partNumber"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxParts {
			return awserr.New("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive").
				With("ArgumentName", "partNumber").With("ArgumentValue", v)
		}
		partNumber = n
	}
	cond := readConditions(rq.r.Header)
	rd, err := a.store.Open(rq.ctx, rq.bucket, rq.key, func(o *objstore.Object) error {
		if !o.ACL.Allows(rq.who, acl.Read) {
			return accessDenied()
		}
		if err := cond.check(o); err != nil {
			if ae, ok := err.(*awserr.Error); ok && ae.Code == "NotModified" {
				h.Set("ETag", `"`+o.ETag+`"`)
				h.Set("Last-Modified", o.Modified.UTC().Format(http.TimeFormat))
			}
			return err
		}
		return nil
	})
	if errors.Is(err, objstore.ErrNoSuchKey) && !b.ACL.Allows(rq.who, acl.Read) {
		// Only those who may list the bucket learn that a key is absent.
		return accessDenied()
	}
	if err != nil {
		return err
	}
	defer rd.Close()
	o := &rd.Object
	setObjectHeaders(h, o)
	h.Set("Accept-Ranges", "bytes")
	for p, name := range responseOverrides {
		if v := rq.q.Get(p); v != "" {
			h.Set(name, v)
		}
	}

	status := http.StatusOK
	rng := byteRange{0, o.Size}
	switch {
	case partNumber > 0:
		count := max(o.Parts, 1)
		if partNumber > count {
			return awserr.New("InvalidPartNumber", "The requested partnumber is not satisfiable").
				With("PartNumberRequested", strconv.Itoa(partNumber)).With("ActualPartCount", strconv.Itoa(count))
		}
		if o.Parts > 0 {
			for i := 0; i < partNumber-1; i++ {
				rng.start += o.Chunks[i].Size
			}
			rng.length = o.Chunks[partNumber-1].Size
			h.Set("x-amz-mp-parts-count", strconv.Itoa(o.Parts))
			status = http.StatusPartialContent
		}
	default:
		r, ok, err := parseRange(rq.r.Header.Get("Range"), o.Size)
		if err != nil {
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(o.Size, 10))
			return err
		}
		if ok {
			rng, status = r, http.StatusPartialContent
		} else if strings.EqualFold(rq.r.Header.Get("X-Amz-Checksum-Mode"), "ENABLED") {
			setChecksumHeader(h, o.Checksum)
		}
	}
	if status == http.StatusPartialContent {
		h.Set("Content-Range", "bytes "+strconv.FormatInt(rng.start, 10)+"-"+
			strconv.FormatInt(rng.start+rng.length-1, 10)+"/"+strconv.FormatInt(o.Size, 10))
	}
	h.Set("Content-Length", strconv.FormatInt(rng.length, 10))
	rq.w.WriteHeader(status)
	if rq.r.Method == http.MethodHead || rng.length == 0 {
		return nil
	}
	_, err = rd.WriteRange(rq.w, rng.start, rng.length)
	return err
}

// bodySize is the size of a PUT's data: Content-Length, or the decoded
// length of an aws-chunked body.
func (a *API) bodySize(rq *request, limit int64) (int64, error) {
	n := rq.r.ContentLength
	if n < 0 {
		return 0, awserr.New("MissingContentLength", "")
	}
	if n > limit {
		return 0, awserr.New("EntityTooLarge", "").
			With("ProposedSize", strconv.FormatInt(n, 10)).With("MaxSizeAllowed", strconv.FormatInt(limit, 10))
	}
	return n, nil
}

// contentMD5 decodes a Content-MD5 header to hex; "" when absent.
func contentMD5(h http.Header) (string, error) {
	v, ok := h["Content-Md5"]
	if !ok {
		return "", nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v[0]))
	if err != nil || len(raw) != md5.Size {
		return "", awserr.New("InvalidDigest", "")
	}
	return hex.EncodeToString(raw), nil
}

func badDigest(wantHex, gotHex string) error {
	want, _ := hex.DecodeString(wantHex)
	return awserr.New("BadDigest", "").
		With("ExpectedDigest", base64.StdEncoding.EncodeToString(want)).With("CalculatedDigest", gotHex)
}

// bodyCheck is what PutObject and UploadPart verify about a body: its
// declared size, Content-MD5 and flexible checksum.
type bodyCheck struct {
	rq      *request
	size    int64
	wantMD5 string
	sum     *checksummer
}

// newBodyCheck reads the request's size and digests; alg is the checksum
// the server computes even when the client sends none ("" for none).
func (a *API) newBodyCheck(rq *request, alg string) (*bodyCheck, error) {
	size, err := a.bodySize(rq, a.cfg.MaxObjectSize)
	if err != nil {
		return nil, err
	}
	wantMD5, err := contentMD5(rq.r.Header)
	if err != nil {
		return nil, err
	}
	sum, err := newChecksummer(rq, alg)
	if err != nil {
		return nil, err
	}
	return &bodyCheck{rq: rq, size: size, wantMD5: wantMD5, sum: sum}, nil
}

// body is the request body, hashed on the way through.
func (c *bodyCheck) body() io.Reader { return c.sum.wrap(c.rq.r.Body) }

// verify runs once the body was read to its end; etag is its MD5.
func (c *bodyCheck) verify(etag string) (*objstore.Checksum, error) {
	if c.wantMD5 != "" && c.wantMD5 != etag {
		return nil, badDigest(c.wantMD5, etag)
	}
	return c.sum.result()
}

func (a *API) putObject(rq *request) error {
	b, err := a.bucketFor(rq, acl.Write)
	if err != nil {
		return err
	}
	check, err := a.newBodyCheck(rq, "")
	if err != nil {
		return err
	}
	meta, err := metaFromHeaders(rq.r.Header)
	if err != nil {
		return err
	}
	pre := writeConditions(rq.r.Header, false)
	owner := rq.owner()
	p, err := a.policyFromHeaders(rq, owner, b.Owner)
	if err != nil {
		return err
	}
	o, err := a.store.Put(rq.ctx, objstore.PutInput{
		Bucket: rq.bucket, Key: rq.key, Body: check.body(), Size: check.size,
		Owner: owner, ACL: p, Meta: meta, Precondition: pre,
		Verify: func(o *objstore.Object) (err error) {
			o.Checksum, err = check.verify(o.ETag)
			return err
		},
	})
	if err != nil {
		return err
	}
	h := rq.w.Header()
	h.Set("ETag", `"`+o.ETag+`"`)
	setChecksumHeader(h, o.Checksum)
	h.Set("Content-Length", "0")
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (a *API) deleteObject(rq *request) error {
	if _, err := a.bucketFor(rq, acl.Write); err != nil {
		return err
	}
	pre := writeConditions(rq.r.Header, true)
	if _, err := a.store.Delete(rq.ctx, rq.bucket, rq.key, pre); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

// maxDeleteKeys is the most keys one DeleteObjects may name.
const maxDeleteKeys = 1000

func (a *API) deleteObjects(rq *request) error {
	if _, err := a.bucketFor(rq, acl.Write); err != nil {
		return err
	}
	h := rq.r.Header
	wantMD5, err := contentMD5(h)
	if err != nil {
		return err
	}
	sum, err := newChecksummer(rq, "")
	if err != nil {
		return err
	}
	if wantMD5 == "" && sum == nil {
		return awserr.New("InvalidRequest", "Missing required header for this request: Content-MD5")
	}
	hm := md5.New()
	var req deleteRequest
	if err := readXML(sum.wrap(io.TeeReader(rq.r.Body, hm)), &req); err != nil {
		return err
	}
	if got := hex.EncodeToString(hm.Sum(nil)); wantMD5 != "" && got != wantMD5 {
		return badDigest(wantMD5, got)
	}
	if _, err := sum.result(); err != nil {
		return err
	}
	if len(req.Objects) == 0 || len(req.Objects) > maxDeleteKeys {
		return awserr.New("MalformedXML", "")
	}
	out := deleteResult{NS: ns}
	for _, obj := range req.Objects {
		switch {
		case obj.Key == "":
			out.Errors = append(out.Errors, xmlDeleteErr{obj.Key, "InvalidArgument", "Invalid key"})
			continue
		case len(obj.Key) > 1024:
			out.Errors = append(out.Errors, xmlDeleteErr{obj.Key, "KeyTooLongError", "Your key is too long"})
			continue
		case obj.VersionID != "" && obj.VersionID != "null":
			out.Errors = append(out.Errors, xmlDeleteErr{obj.Key, "NoSuchVersion", "The specified version does not exist."})
			continue
		}
		var pre objstore.Precondition
		if obj.ETag != "" {
			etag := obj.ETag
			pre = func(old *objstore.Object) error {
				if old != nil && !etagMatches(etag, old.ETag) {
					return awserr.New("PreconditionFailed", "")
				}
				return nil
			}
		}
		if _, err := a.store.Delete(rq.ctx, rq.bucket, obj.Key, pre); err != nil {
			ae := awserr.From(err, rules)
			out.Errors = append(out.Errors, xmlDeleteErr{obj.Key, ae.Code, ae.Message})
			continue
		}
		if !req.Quiet {
			out.Deleted = append(out.Deleted, xmlDeleted{Key: obj.Key, VersionID: obj.VersionID})
		}
	}
	return writeXML(rq.w, out)
}

// copySource parses x-amz-copy-source: [/]bucket/key[?versionId=...],
// percent-encoded.
func copySource(rq *request) (bucket, key string, err error) {
	v := rq.r.Header.Get("X-Amz-Copy-Source")
	src, version, _ := strings.Cut(v, "?")
	if version != "" {
		vq, _ := url.ParseQuery(version)
		if id := vq.Get("versionId"); id != "" && id != "null" {
			return "", "", awserr.New("NoSuchVersion", "")
		}
	}
	src, err = url.PathUnescape(src)
	if err != nil {
		return "", "", awserr.New("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey").
			With("ArgumentName", "x-amz-copy-source")
	}
	src = strings.TrimPrefix(src, "/")
	bucket, key, _ = strings.Cut(src, "/")
	if bucket == "" || key == "" {
		return "", "", awserr.New("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey").
			With("ArgumentName", "x-amz-copy-source").With("ArgumentValue", v)
	}
	return bucket, key, nil
}

// maxCopySize is the largest object CopyObject copies (S3's limit).
const maxCopySize = 5 << 30

func (a *API) copyObject(rq *request) error {
	db, err := a.bucketFor(rq, acl.Write)
	if err != nil {
		return err
	}
	srcBucket, srcKey, err := copySource(rq)
	if err != nil {
		return err
	}
	if err := a.expectOwner(rq, srcBucket, "X-Amz-Source-Expected-Bucket-Owner"); err != nil {
		return err
	}
	h := rq.r.Header
	directive := h.Get("X-Amz-Metadata-Directive")
	if directive != "" && directive != "COPY" && directive != "REPLACE" {
		return awserr.New("InvalidArgument", "Unknown metadata directive.").
			With("ArgumentName", "x-amz-metadata-directive").With("ArgumentValue", directive)
	}
	var meta objstore.Meta
	if directive == "REPLACE" {
		if meta, err = metaFromHeaders(h); err != nil {
			return err
		}
	} else if sc := h.Get("X-Amz-Storage-Class"); sc != "" && !storageClasses[sc] {
		return awserr.New("InvalidStorageClass", "")
	}
	owner := rq.owner()
	p, err := a.policyFromHeaders(rq, owner, db.Owner)
	if err != nil {
		return err
	}
	cond := copyConditions(h)
	o, err := a.store.Copy(rq.ctx, objstore.CopyInput{
		SrcBucket: srcBucket, SrcKey: srcKey, DstBucket: rq.bucket, DstKey: rq.key,
		Check: func(src *objstore.Object) error {
			if !src.ACL.Allows(rq.who, acl.Read) {
				return accessDenied()
			}
			if err := cond.check(src); err != nil {
				return err
			}
			if src.Size > maxCopySize {
				return awserr.Newf("InvalidRequest", "The specified copy source is larger than the maximum allowable size for a copy source: %d", int64(maxCopySize))
			}
			return nil
		},
		Dest: func(src *objstore.Object) (objstore.Object, error) {
			m := meta
			if directive != "REPLACE" {
				m = src.Meta
				if sc := h.Get("X-Amz-Storage-Class"); sc == "STANDARD" {
					m.StorageClass = ""
				} else if sc != "" {
					m.StorageClass = sc
				}
				if srcBucket == rq.bucket && srcKey == rq.key && m.StorageClass == src.Meta.StorageClass &&
					h.Get("X-Amz-Website-Redirect-Location") == "" {
					return objstore.Object{}, awserr.New("InvalidRequest", "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
				}
			}
			return objstore.Object{Owner: owner, ACL: p, Meta: m, Checksum: src.Checksum}, nil
		},
	})
	if err != nil {
		return err
	}
	res := copyResult{XMLName: xml.Name{Local: "CopyObjectResult"}, NS: ns, LastModified: isoTime(o.Modified), ETag: `"` + o.ETag + `"`}
	if o.Checksum != nil && o.Checksum.Type != "COMPOSITE" {
		res.set(o.Checksum)
	}
	return writeXML(rq.w, res)
}

func (a *API) getObjectACL(rq *request) error {
	o, err := a.store.Head(rq.ctx, rq.bucket, rq.key)
	if err != nil {
		return err
	}
	if !o.ACL.Allows(rq.who, acl.ReadACP) {
		return accessDenied()
	}
	writeRaw(rq.w, http.StatusOK, o.ACL.Marshal())
	return nil
}

func (a *API) putObjectACL(rq *request) error {
	b, err := a.store.Bucket(rq.ctx, rq.bucket)
	if err != nil {
		return err
	}
	o, err := a.store.Head(rq.ctx, rq.bucket, rq.key)
	if err != nil {
		return err
	}
	if !o.ACL.Allows(rq.who, acl.WriteACP) {
		return accessDenied()
	}
	p, err := a.policyFromRequest(rq, o.Owner, b.Owner)
	if err != nil {
		return err
	}
	err = a.store.UpdateObject(rq.ctx, rq.bucket, rq.key, func(o *objstore.Object) error {
		o.ACL = p
		return nil
	})
	if err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusOK)
	return nil
}
