package s3api

import (
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/walrus/internal/acl"
	"github.com/koala-cloud/koala/walrus/internal/objstore"
)

// maxParts is the highest part number S3 allows.
const maxParts = 10000

func (a *API) createUpload(rq *request) error {
	b, err := a.bucketFor(rq, acl.Write)
	if err != nil {
		return err
	}
	h := rq.r.Header
	meta, err := metaFromHeaders(h)
	if err != nil {
		return err
	}
	owner := rq.owner()
	p, err := a.policyFromHeaders(rq, owner, b.Owner)
	if err != nil {
		return err
	}
	alg := strings.ToUpper(h.Get("X-Amz-Checksum-Algorithm"))
	typ := strings.ToUpper(h.Get("X-Amz-Checksum-Type"))
	if alg != "" && !validAlgorithm(alg) {
		return awserr.New("InvalidRequest", "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
	}
	switch {
	case typ != "" && alg == "":
		return awserr.New("InvalidRequest", "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.")
	case typ != "" && typ != "COMPOSITE" && typ != "FULL_OBJECT":
		return awserr.New("InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
	case typ == "":
		if alg == "CRC64NVME" {
			typ = "FULL_OBJECT"
		} else if alg != "" {
			typ = "COMPOSITE"
		}
	}
	if (typ == "FULL_OBJECT" && strings.HasPrefix(alg, "SHA")) || (typ == "COMPOSITE" && alg == "CRC64NVME") {
		return awserr.Newf("InvalidRequest", "The %s checksum type cannot be used with the %s checksum algorithm.", strings.ToLower(typ), strings.ToLower(alg))
	}
	u, err := a.store.CreateUpload(rq.ctx, objstore.Upload{
		Bucket: rq.bucket, Key: rq.key, Owner: owner, ACL: p, Meta: meta,
		ChecksumAlgorithm: alg, ChecksumType: typ,
	})
	if err != nil {
		return err
	}
	if alg != "" {
		rq.w.Header().Set("x-amz-checksum-algorithm", alg)
		rq.w.Header().Set("x-amz-checksum-type", typ)
	}
	return writeXML(rq.w, initiateResult{NS: ns, Bucket: rq.bucket, Key: rq.key, UploadID: u.ID})
}

// partNumber reads the partNumber parameter of UploadPart(Copy).
func partNumber(rq *request) (int, error) {
	v := rq.q.Get("partNumber")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxParts {
		return 0, awserr.New("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive").
			With("ArgumentName", "partNumber").With("ArgumentValue", v)
	}
	return n, nil
}

// partUpload checks a part's upload and the caller's right to add to it.
func (a *API) partUpload(rq *request) (objstore.Upload, int, error) {
	if _, err := a.bucketFor(rq, acl.Write); err != nil {
		return objstore.Upload{}, 0, err
	}
	n, err := partNumber(rq)
	if err != nil {
		return objstore.Upload{}, 0, err
	}
	u, err := a.store.GetUpload(rq.ctx, rq.bucket, rq.key, rq.q.Get("uploadId"))
	return u, n, err
}

func (a *API) uploadPart(rq *request) error {
	u, n, err := a.partUpload(rq)
	if err != nil {
		return err
	}
	check, err := a.newBodyCheck(rq, u.ChecksumAlgorithm)
	if err != nil {
		return err
	}
	p, err := a.store.PutPart(rq.ctx, objstore.PartInput{
		Bucket: rq.bucket, Key: rq.key, UploadID: u.ID, Number: n, Body: check.body(), Size: check.size,
		Verify: func(p *objstore.Part) (err error) {
			p.Checksum, err = check.verify(p.ETag)
			return err
		},
	})
	if err != nil {
		return err
	}
	h := rq.w.Header()
	h.Set("ETag", `"`+p.ETag+`"`)
	if p.Checksum != nil {
		h.Set(checksumHeader(p.Checksum.Algorithm), p.Checksum.Value)
	}
	h.Set("Content-Length", "0")
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

// copyRange parses x-amz-copy-source-range against the source size.
func copyRange(v string, size int64) (byteRange, error) {
	if v == "" {
		return byteRange{0, size}, nil
	}
	bad := awserr.Newf("InvalidArgument", "Range specified is not valid for source object of size: %d", size).
		With("ArgumentName", "x-amz-copy-source-range").With("ArgumentValue", v)
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok {
		return byteRange{}, bad
	}
	first, last, ok := strings.Cut(spec, "-")
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(last, 10, 64)
	if !ok || err1 != nil || err2 != nil || start < 0 || end < start {
		return byteRange{}, bad
	}
	if end >= size {
		return byteRange{}, awserr.New("InvalidRange", "The requested range is not satisfiable").
			With("RangeRequested", v).With("ActualObjectSize", strconv.FormatInt(size, 10))
	}
	return byteRange{start, end - start + 1}, nil
}

func (a *API) uploadPartCopy(rq *request) error {
	u, n, err := a.partUpload(rq)
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
	cond := copyConditions(rq.r.Header)
	var rng byteRange
	src, err := a.store.Open(rq.ctx, srcBucket, srcKey, func(o *objstore.Object) error {
		if !o.ACL.Allows(rq.who, acl.Read) {
			return accessDenied()
		}
		if err := cond.check(o); err != nil {
			return err
		}
		rng, err = copyRange(rq.r.Header.Get("X-Amz-Copy-Source-Range"), o.Size)
		if err == nil && rng.length > a.cfg.MaxObjectSize {
			err = awserr.New("EntityTooLarge", "")
		}
		return err
	})
	if err != nil {
		return err
	}
	defer src.Close()
	body := src.Section(rng.start, rng.length)
	defer body.Close()
	var sum *checksummer
	if u.ChecksumAlgorithm != "" {
		sum = &checksummer{alg: u.ChecksumAlgorithm, h: newHash(u.ChecksumAlgorithm), rq: rq}
	}
	p, err := a.store.PutPart(rq.ctx, objstore.PartInput{
		Bucket: rq.bucket, Key: rq.key, UploadID: u.ID, Number: n, Body: sum.wrap(body), Size: rng.length,
		Verify: func(p *objstore.Part) error {
			cs, err := sum.result()
			p.Checksum = cs
			return err
		},
	})
	if err != nil {
		return err
	}
	res := copyResult{XMLName: xml.Name{Local: "CopyPartResult"}, NS: ns, LastModified: isoTime(p.Modified), ETag: `"` + p.ETag + `"`}
	res.set(p.Checksum)
	return writeXML(rq.w, res)
}

func (a *API) completeUpload(rq *request) error {
	if _, err := a.bucketFor(rq, acl.Write); err != nil {
		return err
	}
	id := rq.q.Get("uploadId")
	var req completeRequest
	if err := readXML(rq.r.Body, &req); err != nil || len(req.Parts) == 0 {
		// S3 calls an empty body malformed here too.
		return awserr.New("MalformedXML", "")
	}
	parts := make([]objstore.CompletePart, len(req.Parts))
	for i, p := range req.Parts {
		parts[i] = objstore.CompletePart{Number: p.PartNumber, ETag: p.ETag, Checksum: p.value()}
	}
	h := rq.r.Header
	pre := writeConditions(h, false)
	o, err := a.store.Complete(rq.ctx, objstore.CompleteInput{
		Bucket: rq.bucket, Key: rq.key, UploadID: id, Parts: parts, MinPartSize: a.cfg.MinPartSize,
		Precondition: pre,
		Finish: func(u *objstore.Upload, chosen []objstore.Part, o *objstore.Object) error {
			return finishChecksum(h, u, parts, chosen, o)
		},
	})
	if err != nil {
		return err
	}
	res := completeResult{
		NS: ns, Location: "http://" + rq.r.Host + "/" + rq.bucket + "/" + urlEncode(rq.key),
		Bucket: rq.bucket, Key: rq.key, ETag: `"` + o.ETag + `"`,
	}
	if o.Checksum != nil {
		res.ChecksumType = o.Checksum.Type
		res.set(o.Checksum)
	}
	return writeXML(rq.w, res)
}

// finishChecksum checks the part checksums a CompleteMultipartUpload lists
// and sets the object's checksum from the parts'.
func finishChecksum(h http.Header, u *objstore.Upload, listed []objstore.CompletePart, chosen []objstore.Part, o *objstore.Object) error {
	unlisted := 0 // first part listed without its checksum
	for i, p := range chosen {
		switch {
		case listed[i].Checksum == "":
			if unlisted == 0 {
				unlisted = p.Number
			}
		case p.Checksum == nil || p.Checksum.Value != listed[i].Checksum:
			return awserr.New("InvalidPart", "").With("PartNumber", strconv.Itoa(p.Number))
		}
	}
	alg := u.ChecksumAlgorithm
	if alg == "" {
		return nil
	}
	var value string
	var err error
	if u.ChecksumType == "FULL_OBJECT" {
		value, err = fullObject(alg, chosen)
	} else {
		value, err = composite(alg, chosen)
	}
	var missing missingChecksum
	if errors.As(err, &missing) {
		return awserr.Newf("InvalidRequest", "The upload was created using a %s checksum, but part %d was uploaded without one.", strings.ToLower(alg), missing.part)
	}
	if err != nil {
		return err
	}
	// The client may state the whole object's checksum; for COMPOSITE with
	// or without the -N suffix. S3 checks it before the part list.
	if want := h.Get(checksumHeader(alg)); want != "" {
		bare, _, _ := strings.Cut(value, "-")
		if want != value && (u.ChecksumType != "COMPOSITE" || want != bare) {
			return awserr.Newf("BadDigest", "The %s you specified did not match the calculated checksum.", alg)
		}
	}
	if unlisted != 0 && u.ChecksumType == "COMPOSITE" {
		return awserr.Newf("InvalidRequest", "The upload was created using a %s checksum. The complete request must include the checksum for each part. It was missing for part %d in the request.", strings.ToLower(alg), unlisted)
	}
	o.Checksum = &objstore.Checksum{Algorithm: alg, Value: value, Type: u.ChecksumType}
	return nil
}

func (a *API) abortUpload(rq *request) error {
	if _, err := a.bucketFor(rq, acl.Write); err != nil {
		return err
	}
	if err := a.store.Abort(rq.ctx, rq.bucket, rq.key, rq.q.Get("uploadId")); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listParts(rq *request) error {
	if _, err := a.bucketFor(rq, acl.Read); err != nil {
		return err
	}
	max, err := intParam(rq, "max-parts", maxList, maxList)
	if err != nil {
		return err
	}
	marker := 0
	if v := rq.q.Get("part-number-marker"); v != "" {
		if marker, err = strconv.Atoi(v); err != nil || marker < 0 {
			return awserr.New("InvalidArgument", "Provided part-number-marker not an integer or within integer range").
				With("ArgumentName", "part-number-marker").With("ArgumentValue", v)
		}
	}
	id := rq.q.Get("uploadId")
	u, err := a.store.GetUpload(rq.ctx, rq.bucket, rq.key, id)
	if err != nil {
		return err
	}
	parts, truncated, err := a.store.Parts(rq.ctx, rq.bucket, rq.key, id, marker, max)
	if err != nil {
		return err
	}
	out := listPartsResult{
		NS: ns, Bucket: rq.bucket, Key: rq.key, UploadID: id,
		Initiator: xmlOwner{u.Owner.ID, u.Owner.DisplayName}, Owner: xmlOwner{u.Owner.ID, u.Owner.DisplayName},
		StorageClass: storageClass(u.Meta), PartNumberMarker: marker, MaxParts: max, IsTruncated: truncated,
		ChecksumAlgorithm: u.ChecksumAlgorithm, ChecksumType: u.ChecksumType,
	}
	for _, p := range parts {
		xp := xmlPart{PartNumber: p.Number, LastModified: isoTime(p.Modified), ETag: `"` + p.ETag + `"`, Size: p.Size}
		xp.set(p.Checksum)
		out.Parts = append(out.Parts, xp)
		out.NextPartNumberMarker = p.Number
	}
	return writeXML(rq.w, out)
}

func (a *API) listUploads(rq *request) error {
	l, err := a.listing(rq, "max-uploads")
	if err != nil {
		return err
	}
	max, enc, encType := l.max, l.enc, l.encType
	q := rq.q
	in := objstore.UploadsInput{
		Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"),
		KeyMarker: q.Get("key-marker"), UploadIDMarker: q.Get("upload-id-marker"), Max: max,
	}
	res, err := a.store.Uploads(rq.ctx, rq.bucket, in)
	if err != nil {
		return err
	}
	out := listUploadsResult{
		NS: ns, Bucket: rq.bucket, KeyMarker: enc(in.KeyMarker), UploadIDMarker: in.UploadIDMarker,
		Prefix: enc(in.Prefix), Delimiter: enc(in.Delimiter), MaxUploads: max, IsTruncated: res.Truncated,
		EncodingType: encType,
	}
	if res.Truncated {
		out.NextKeyMarker, out.NextUploadIDMarker = enc(res.NextKeyMarker), res.NextUploadID
	}
	for _, u := range res.Uploads {
		out.Uploads = append(out.Uploads, xmlUpload{
			Key: enc(u.Key), UploadID: u.ID, Initiator: xmlOwner{u.Owner.ID, u.Owner.DisplayName},
			Owner: xmlOwner{u.Owner.ID, u.Owner.DisplayName}, StorageClass: storageClass(u.Meta),
			Initiated: isoTime(u.Initiated), ChecksumAlgorithm: u.ChecksumAlgorithm,
		})
	}
	out.CommonPrefixes = l.prefixes(res.Prefixes)
	return writeXML(rq.w, out)
}
