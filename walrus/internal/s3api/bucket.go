package s3api

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/walrus/internal/acl"
	"github.com/koala-cloud/koala/walrus/internal/objstore"
)

func accessDenied() error { return awserr.New("AccessDenied", "Access Denied") }

// bucketFor loads the request's bucket and checks that the requester
// holds perm on it.
func (a *API) bucketFor(rq *request, perm acl.Permission) (objstore.Bucket, error) {
	b, err := a.store.Bucket(rq.ctx, rq.bucket)
	if err != nil {
		return b, err
	}
	if !b.ACL.Allows(rq.who, perm) {
		return b, accessDenied()
	}
	return b, nil
}

// ownedBucket loads the request's bucket and checks that the requester
// owns it.
func (a *API) ownedBucket(rq *request) (objstore.Bucket, error) {
	b, err := a.store.Bucket(rq.ctx, rq.bucket)
	if err != nil {
		return b, err
	}
	if rq.who == nil || rq.who.CanonicalID != b.Owner.ID {
		return b, accessDenied()
	}
	return b, nil
}

func (a *API) listBuckets(rq *request) error {
	if rq.account == nil {
		return accessDenied()
	}
	max := 10000
	if v := rq.q.Get("max-buckets"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return awserr.New("InvalidArgument", "Argument max-buckets must be an integer between 1 and 10000").
				With("ArgumentName", "max-buckets").With("ArgumentValue", v)
		}
		max = n
	}
	after := ""
	if tok := rq.q.Get("continuation-token"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return awserr.New("InvalidArgument", "The continuation token provided is incorrect").
				With("ArgumentName", "continuation-token")
		}
		after = string(raw)
	}
	bs, err := a.store.Buckets(rq.ctx, rq.account.CanonicalID)
	if err != nil {
		return err
	}
	prefix := rq.q.Get("prefix")
	out := listAllMyBucketsResult{NS: ns, Owner: xmlOwner{rq.account.CanonicalID, rq.account.DisplayName}}
	if rq.q.Has("prefix") {
		out.Prefix = &prefix
	}
	for _, b := range bs {
		if !strings.HasPrefix(b.Name, prefix) || b.Name <= after {
			continue
		}
		if len(out.Buckets) == max {
			out.ContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(out.Buckets[max-1].Name))
			break
		}
		out.Buckets = append(out.Buckets, xmlBucket{Name: b.Name, CreationDate: isoTime(b.Created), BucketRegion: b.Region})
	}
	return writeXML(rq.w, out)
}

var (
	bucketNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	regionRE     = regexp.MustCompile(`^(EU|[a-z]{2}(-gov)?-[a-z]+-\d)$`)
)

// validBucketName applies S3's naming rules for new buckets.
func validBucketName(name string) bool {
	if !bucketNameRE.MatchString(name) || strings.Contains(name, "..") ||
		strings.Contains(name, ".-") || strings.Contains(name, "-.") {
		return false
	}
	if net.ParseIP(name) != nil {
		return false
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, s) {
			return false
		}
	}
	return true
}

func (a *API) createBucket(rq *request) error {
	if rq.account == nil {
		return accessDenied()
	}
	if !validBucketName(rq.bucket) {
		return awserr.New("InvalidBucketName", "").With("BucketName", rq.bucket)
	}
	if rq.r.ContentLength != 0 {
		var cfg struct {
			XMLName            xml.Name `xml:"CreateBucketConfiguration"`
			LocationConstraint string   `xml:"LocationConstraint"`
		}
		if err := readXML(rq.r.Body, &cfg); err != nil {
			if ae, ok := err.(*awserr.Error); ok && ae.Code == "MissingRequestBodyError" {
				cfg.LocationConstraint = ""
			} else {
				return err
			}
		}
		if lc := cfg.LocationConstraint; lc != "" && lc != a.cfg.Region {
			if regionRE.MatchString(lc) {
				return awserr.Newf("IllegalLocationConstraintException",
					"The %s location constraint is incompatible for the region specific endpoint this request was sent to.", lc)
			}
			return awserr.New("InvalidLocationConstraint", "").With("LocationConstraint", lc)
		}
	}
	owner := rq.owner()
	p, err := a.policyFromHeaders(rq, owner, owner)
	if err != nil {
		return err
	}
	err = a.store.CreateBucket(rq.ctx, objstore.Bucket{
		Name: rq.bucket, Owner: owner, Account: rq.account.ID, Region: a.cfg.Region, ACL: p,
	}, a.cfg.MaxBuckets)
	if errors.Is(err, objstore.ErrBucketOwned) && a.cfg.Region == "us-east-1" {
		// S3's legacy answer in us-east-1: 200, and the ACL is reset.
		err = a.store.SetBucketACL(rq.ctx, rq.bucket, p)
	}
	if err != nil {
		return err
	}
	rq.w.Header().Set("Location", "/"+rq.bucket)
	rq.w.Header().Set("Content-Length", "0")
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (a *API) headBucket(rq *request) error {
	b, err := a.bucketFor(rq, acl.Read)
	if err != nil {
		return err
	}
	rq.w.Header().Set("x-amz-bucket-region", b.Region)
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (a *API) deleteBucket(rq *request) error {
	if _, err := a.ownedBucket(rq); err != nil {
		return err
	}
	if err := a.store.DeleteBucket(rq.ctx, rq.bucket); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) getBucketLocation(rq *request) error {
	b, err := a.ownedBucket(rq)
	if err != nil {
		return err
	}
	region := b.Region
	if region == "us-east-1" {
		region = ""
	}
	return writeXML(rq.w, struct {
		XMLName xml.Name `xml:"LocationConstraint"`
		NS      string   `xml:"xmlns,attr"`
		Region  string   `xml:",chardata"`
	}{NS: ns, Region: region})
}

// emptyConfig answers the read of a bucket setting that is never set.
func (a *API) emptyConfig(rq *request, element string) error {
	if _, err := a.ownedBucket(rq); err != nil {
		return err
	}
	return writeXML(rq.w, struct {
		XMLName xml.Name
		NS      string `xml:"xmlns,attr"`
	}{XMLName: xml.Name{Local: element}, NS: ns})
}

func (a *API) getRequestPayment(rq *request) error {
	if _, err := a.ownedBucket(rq); err != nil {
		return err
	}
	return writeXML(rq.w, struct {
		XMLName xml.Name `xml:"RequestPaymentConfiguration"`
		NS      string   `xml:"xmlns,attr"`
		Payer   string   `xml:"Payer"`
	}{NS: ns, Payer: "BucketOwner"})
}

// bucketConfig answers a bucket setting walrus cannot configure: reading
// says it is not set, deleting succeeds, setting is not implemented.
func (a *API) bucketConfig(rq *request, sub, code string) error {
	if _, err := a.ownedBucket(rq); err != nil {
		return err
	}
	switch rq.r.Method {
	case http.MethodGet:
		return awserr.New(code, "").With("BucketName", rq.bucket)
	case http.MethodDelete:
		rq.w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return notImplemented("Setting the bucket's " + sub)
}

func (a *API) getBucketACL(rq *request) error {
	b, err := a.bucketFor(rq, acl.ReadACP)
	if err != nil {
		return err
	}
	writeRaw(rq.w, http.StatusOK, b.ACL.Marshal())
	return nil
}

func (a *API) putBucketACL(rq *request) error {
	b, err := a.bucketFor(rq, acl.WriteACP)
	if err != nil {
		return err
	}
	p, err := a.policyFromRequest(rq, b.Owner, b.Owner)
	if err != nil {
		return err
	}
	if err := a.store.SetBucketACL(rq.ctx, rq.bucket, p); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

// policyFromHeaders builds the ACL a request asks for in x-amz-acl or the
// x-amz-grant-* headers; private when it asks for none.
func (a *API) policyFromHeaders(rq *request, owner, bucketOwner acl.Owner) (acl.Policy, error) {
	h := rq.r.Header
	canned := h.Get("X-Amz-Acl")
	p := acl.Policy{Owner: owner}
	grants := false
	for _, g := range acl.GrantHeaders {
		if v := h.Get(g.Header); v != "" {
			grants = true
			if err := acl.FromGrantHeader(&p, g.Permission, v, a.accounts); err != nil {
				return acl.Policy{}, err
			}
		}
	}
	switch {
	case grants && canned != "":
		return acl.Policy{}, acl.ErrCannedAndGrants
	case grants:
		return p, nil
	}
	return acl.Canned(canned, owner, bucketOwner)
}

// policyFromRequest builds the ACL of a PutBucketAcl or PutObjectAcl: from
// the headers, or from the AccessControlPolicy document in the body.
func (a *API) policyFromRequest(rq *request, owner, bucketOwner acl.Owner) (acl.Policy, error) {
	h := rq.r.Header
	fromHeaders := h.Get("X-Amz-Acl") != ""
	for _, g := range acl.GrantHeaders {
		fromHeaders = fromHeaders || h.Get(g.Header) != ""
	}
	if fromHeaders {
		if rq.r.ContentLength > 0 {
			return acl.Policy{}, awserr.New("UnexpectedContent", "This request does not support content")
		}
		return a.policyFromHeaders(rq, owner, bucketOwner)
	}
	if rq.r.ContentLength == 0 {
		return acl.Policy{}, awserr.New("MissingSecurityHeader", "Your request was missing a required header").With("MissingHeaderName", "x-amz-acl")
	}
	return acl.Parse(rq.r.Body, owner, a.accounts)
}
