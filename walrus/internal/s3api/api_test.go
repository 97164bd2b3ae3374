package s3api

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/sigv4"
	"github.com/koala-cloud/koala/walrus/internal/acl"
	"github.com/koala-cloud/koala/walrus/internal/objstore"
)

type key struct {
	acct   Account
	secret string
}

type fakeAccounts map[string]key

func (f fakeAccounts) Key(_ context.Context, id string) (Account, string, error) {
	k, ok := f[id]
	if !ok {
		return Account{}, "", fmt.Errorf("%w: %s", ErrUnknownKey, id)
	}
	return k.acct, k.secret, nil
}

func (f fakeAccounts) ByEmail(email string) (acl.Owner, bool) {
	for _, k := range f {
		if k.acct.Email == email {
			return acl.Owner{ID: k.acct.CanonicalID, DisplayName: k.acct.DisplayName}, true
		}
	}
	return acl.Owner{}, false
}

func (f fakeAccounts) ByID(id string) (acl.Owner, bool) {
	for _, k := range f {
		if k.acct.CanonicalID == id {
			return acl.Owner{ID: id, DisplayName: k.acct.DisplayName}, true
		}
	}
	return acl.Owner{}, false
}

// client signs requests as one account, or sends them anonymously.
type client struct {
	t      *testing.T
	url    string
	akid   string
	secret string
	now    time.Time // zero: the real clock
}

type env struct {
	url      string
	alice    *client
	bob      *client
	anon     *client
	store    *objstore.Store
	accounts fakeAccounts
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvIn(t, "us-east-1")
}

// newEnvIn starts an API serving region.
func newEnvIn(t *testing.T, region string) *env {
	t.Helper()
	st, err := objstore.Open(t.TempDir(), slog.New(slog.DiscardHandler), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	accts := fakeAccounts{
		"AKIDALICE": {Account{ID: "111111111111", CanonicalID: "alice-cid", DisplayName: "alice", Email: "alice@example.com"}, "alice-secret"},
		"AKIDBOB":   {Account{ID: "222222222222", CanonicalID: "bob-cid", DisplayName: "bob", Email: "bob@example.com"}, "bob-secret"},
	}
	api := New(Config{
		Region: region, Domains: []string{"s3.test"}, MaxBuckets: 5,
		MaxObjectSize: 1 << 20, MinPartSize: 1 << 10,
	}, st, accts, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		srv.Close()
		if err := st.Check(); err != nil {
			t.Errorf("store consistency: %v", err)
		}
		st.Close()
	})
	e := &env{url: srv.URL, store: st, accounts: accts}
	e.alice = &client{t: t, url: srv.URL, akid: "AKIDALICE", secret: "alice-secret"}
	e.bob = &client{t: t, url: srv.URL, akid: "AKIDBOB", secret: "bob-secret"}
	e.anon = &client{t: t, url: srv.URL}
	return e
}

// req is one request to send.
type req struct {
	method, path string
	body         string
	header       map[string]string
	host         string // overrides the Host header
	unsigned     bool   // sign with UNSIGNED-PAYLOAD
}

type resp struct {
	status int
	header http.Header
	body   string
	close  bool // the server asked to close the connection
}

// code returns the S3 error code in the response body.
func (r resp) code() string {
	var e struct{ Code string }
	_ = xml.Unmarshal([]byte(r.body), &e)
	return e.Code
}

func (c *client) do(q req) resp {
	c.t.Helper()
	r, err := http.NewRequest(q.method, c.url+q.path, strings.NewReader(q.body))
	if err != nil {
		c.t.Fatal(err)
	}
	if q.body == "" {
		r.Body = http.NoBody
	}
	for k, v := range q.header {
		if strings.EqualFold(k, "Content-Length") {
			continue
		}
		r.Header.Set(k, v)
	}
	if q.host != "" {
		r.Host = q.host
	}
	if c.akid != "" {
		now := c.now
		if now.IsZero() {
			now = time.Now()
		}
		hash := sigv4.UnsignedPayload
		if !q.unsigned {
			h := sha256.Sum256([]byte(q.body))
			hash = hex.EncodeToString(h[:])
		}
		if err := sigv4.Sign(r, c.akid, c.secret, "us-east-1", "s3", hash, now); err != nil {
			c.t.Fatal(err)
		}
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b), res.Close}
}

func (c *client) must(q req, status int) resp {
	c.t.Helper()
	r := c.do(q)
	if r.status != status {
		c.t.Fatalf("%s %s: status %d, want %d: %s", q.method, q.path, r.status, status, r.body)
	}
	return r
}

func b64md5(s string) string {
	h := md5.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(h[:])
}

func TestErrors(t *testing.T) {
	e := newEnv(t)
	a := e.alice
	a.must(req{method: "PUT", path: "/full"}, 200)
	a.must(req{method: "PUT", path: "/full/key", body: "data"}, 200)
	upload := func() string {
		r := a.must(req{method: "POST", path: "/full/mp?uploads"}, 200)
		var res struct{ UploadId string }
		xml.Unmarshal([]byte(r.body), &res)
		return res.UploadId
	}
	up := upload()
	part1 := a.must(req{method: "PUT", path: "/full/mp?partNumber=1&uploadId=" + up, body: "small"}, 200).header.Get("ETag")
	part2 := a.must(req{method: "PUT", path: "/full/mp?partNumber=2&uploadId=" + up, body: "small"}, 200).header.Get("ETag")

	skewed := &client{t: t, url: e.url, akid: "AKIDALICE", secret: "alice-secret", now: time.Now().Add(-20 * time.Minute)}
	badKey := &client{t: t, url: e.url, akid: "AKIDNOBODY", secret: "x"}
	badSecret := &client{t: t, url: e.url, akid: "AKIDALICE", secret: "wrong"}

	cases := []struct {
		name   string
		c      *client
		r      req
		status int
		code   string
	}{
		{"no such bucket", a, req{method: "GET", path: "/nobucket"}, 404, "NoSuchBucket"},
		{"no such key", a, req{method: "GET", path: "/full/nokey"}, 404, "NoSuchKey"},
		{"head no such key", a, req{method: "HEAD", path: "/full/nokey"}, 404, ""},
		{"invalid bucket name", a, req{method: "PUT", path: "/Bad_Name"}, 400, "InvalidBucketName"},
		{"bucket name is an ip", a, req{method: "PUT", path: "/192.168.1.1"}, 400, "InvalidBucketName"},
		{"own bucket again (us-east-1: 200)", a, req{method: "PUT", path: "/full"}, 200, ""},
		{"expected owner differs", a, req{method: "GET", path: "/full", header: map[string]string{"x-amz-expected-bucket-owner": "222222222222"}}, 403, "AccessDenied"},
		{"expected owner matches", a, req{method: "HEAD", path: "/full/key", header: map[string]string{"x-amz-expected-bucket-owner": "111111111111"}}, 200, ""},
		{"expected source owner differs", a, req{method: "PUT", path: "/full/k5", header: map[string]string{"x-amz-copy-source": "/full/key", "x-amz-source-expected-bucket-owner": "222222222222"}}, 403, "AccessDenied"},
		{"grant to unknown id", a, req{method: "PUT", path: "/full?acl", header: map[string]string{"x-amz-grant-read": `id="_foo"`}}, 400, "InvalidArgument"},
		{"someone else's bucket", e.bob, req{method: "PUT", path: "/full"}, 409, "BucketAlreadyExists"},
		{"bucket not empty", a, req{method: "DELETE", path: "/full"}, 409, "BucketNotEmpty"},
		{"key too long", a, req{method: "PUT", path: "/full/" + strings.Repeat("k", 1025), body: "x"}, 400, "KeyTooLongError"},
		{"malformed location", a, req{method: "PUT", path: "/newbucket", body: "<CreateBucketConfiguration><Loc"}, 400, "MalformedXML"},
		{"foreign location", a, req{method: "PUT", path: "/newbucket", body: "<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>"}, 400, "IllegalLocationConstraintException"},
		{"invalid digest", a, req{method: "PUT", path: "/full/k2", body: "abc", header: map[string]string{"Content-MD5": "notbase64!"}}, 400, "InvalidDigest"},
		{"bad digest", a, req{method: "PUT", path: "/full/k2", body: "abc", header: map[string]string{"Content-MD5": b64md5("abd")}}, 400, "BadDigest"},
		{"entity too large", a, req{method: "PUT", path: "/full/k2", body: strings.Repeat("x", 1<<20+1)}, 400, "EntityTooLarge"},
		{"unknown access key", badKey, req{method: "GET", path: "/full"}, 403, "InvalidAccessKeyId"},
		{"wrong secret", badSecret, req{method: "GET", path: "/full"}, 403, "SignatureDoesNotMatch"},
		{"skewed clock", skewed, req{method: "GET", path: "/full"}, 403, "RequestTimeTooSkewed"},
		{"anonymous list", e.anon, req{method: "GET", path: "/full"}, 403, "AccessDenied"},
		{"other account reads", e.bob, req{method: "GET", path: "/full/key"}, 403, "AccessDenied"},
		{"other account lists", e.bob, req{method: "GET", path: "/full"}, 403, "AccessDenied"},
		{"other account writes", e.bob, req{method: "PUT", path: "/full/bobs", body: "x"}, 403, "AccessDenied"},
		{"other account deletes bucket", e.bob, req{method: "DELETE", path: "/full"}, 403, "AccessDenied"},
		{"anonymous list buckets", e.anon, req{method: "GET", path: "/"}, 403, "AccessDenied"},
		{"range past end", a, req{method: "GET", path: "/full/key", header: map[string]string{"Range": "bytes=10-20"}}, 416, "InvalidRange"},
		{"if-match fails", a, req{method: "GET", path: "/full/key", header: map[string]string{"If-Match": `"nope"`}}, 412, "PreconditionFailed"},
		{"if-none-match matches", a, req{method: "GET", path: "/full/key", header: map[string]string{"If-None-Match": `"` + strings.Trim(md5hex("data"), `"`) + `"`}}, 304, ""},
		{"not implemented", a, req{method: "PUT", path: "/full?versioning", body: "<VersioningConfiguration/>"}, 501, "NotImplemented"},
		{"not implemented sub-resource", a, req{method: "GET", path: "/full/key?torrent"}, 501, "NotImplemented"},
		{"no policy", a, req{method: "GET", path: "/full?policy"}, 404, "NoSuchBucketPolicy"},
		{"no such upload", a, req{method: "PUT", path: "/full/mp?partNumber=1&uploadId=nope", body: "x"}, 404, "NoSuchUpload"},
		{"bad part number", a, req{method: "PUT", path: "/full/mp?partNumber=10001&uploadId=" + up, body: "x"}, 400, "InvalidArgument"},
		{"entity too small", a, req{method: "POST", path: "/full/mp?uploadId=" + up, body: complete(1, part1, 2, part2)}, 400, "EntityTooSmall"},
		{"invalid part", a, req{method: "POST", path: "/full/mp?uploadId=" + up, body: complete(1, `"0123"`)}, 400, "InvalidPart"},
		{"invalid part order", a, req{method: "POST", path: "/full/mp?uploadId=" + up, body: complete(2, part2, 1, part1)}, 400, "InvalidPartOrder"},
		{"malformed complete", a, req{method: "POST", path: "/full/mp?uploadId=" + up, body: "<Complete"}, 400, "MalformedXML"},
		{"empty complete", a, req{method: "POST", path: "/full/mp?uploadId=" + up, body: "<CompleteMultipartUpload></CompleteMultipartUpload>"}, 400, "MalformedXML"},
		{"bad max-keys", a, req{method: "GET", path: "/full?max-keys=abc"}, 400, "InvalidArgument"},
		{"bad encoding type", a, req{method: "GET", path: "/full?encoding-type=xml"}, 400, "InvalidArgument"},
		{"bad continuation token", a, req{method: "GET", path: "/full?list-type=2&continuation-token=%21%21"}, 400, "InvalidArgument"},
		{"delete objects without md5", a, req{method: "POST", path: "/full?delete", body: "<Delete><Object><Key>key</Key></Object></Delete>"}, 400, "InvalidRequest"},
		{"copy to itself", a, req{method: "PUT", path: "/full/key", header: map[string]string{"x-amz-copy-source": "/full/key"}}, 400, "InvalidRequest"},
		{"bad canned acl", a, req{method: "PUT", path: "/full/key?acl", header: map[string]string{"x-amz-acl": "public"}}, 400, "InvalidArgument"},
		{"bad storage class", a, req{method: "PUT", path: "/full/k3", body: "x", header: map[string]string{"x-amz-storage-class": "COLD"}}, 400, "InvalidStorageClass"},
		{"checksum mismatch", a, req{method: "PUT", path: "/full/k3", body: "x", header: map[string]string{"x-amz-checksum-crc32": "AAAAAA=="}}, 400, "BadDigest"},
		{"checksum malformed", a, req{method: "PUT", path: "/full/k3", body: "x", header: map[string]string{"x-amz-checksum-sha256": "AAAAAA=="}}, 400, "InvalidRequest"},
		{"method not allowed", a, req{method: "POST", path: "/"}, 405, "MethodNotAllowed"},
		{"preflight without origin", e.anon, req{method: "OPTIONS", path: "/full/key"}, 400, "BadRequest"},
		{"preflight", e.anon, req{method: "OPTIONS", path: "/full/key", header: map[string]string{"Origin": "http://x", "Access-Control-Request-Method": "GET"}}, 403, "AccessForbidden"},
		{"key not utf-8", a, req{method: "GET", path: "/full/%AE%8A-"}, 400, "InvalidURI"},
		{"grant to unknown email", a, req{method: "PUT", path: "/full?acl", header: map[string]string{"x-amz-grant-read": `emailAddress="nobody@example.com"`}}, 400, "UnresolvableGrantByEmailAddress"},
		{"part of a simple object", a, req{method: "GET", path: "/full/key?partNumber=2"}, 416, "InvalidPartNumber"},
		{"metadata too large", a, req{method: "PUT", path: "/full/k4", body: "x", header: map[string]string{"x-amz-meta-big": strings.Repeat("v", 2100)}}, 400, "MetadataTooLarge"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.t = t
			r := tc.c.do(tc.r)
			if r.status != tc.status || r.code() != tc.code {
				t.Fatalf("got %d %q, want %d %q: %s", r.status, r.code(), tc.status, tc.code, r.body)
			}
			if r.header.Get("x-amz-request-id") == "" {
				t.Error("no x-amz-request-id")
			}
			if tc.code != "" && !strings.Contains(r.body, "<RequestId>"+r.header.Get("x-amz-request-id")+"</RequestId>") {
				t.Errorf("error document without the request id: %s", r.body)
			}
		})
	}
	a.t = t
	// Nothing the failures touched is half there.
	for _, k := range []string{"k2", "k3", "k4", "k5", "bobs"} {
		a.must(req{method: "HEAD", path: "/full/" + k}, 404)
	}
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return `"` + hex.EncodeToString(h[:]) + `"`
}

func complete(parts ...any) string {
	var b strings.Builder
	b.WriteString("<CompleteMultipartUpload>")
	for i := 0; i+1 < len(parts); i += 2 {
		fmt.Fprintf(&b, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", parts[i], parts[i+1])
	}
	b.WriteString("</CompleteMultipartUpload>")
	return b.String()
}

func TestTooManyBuckets(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.alice.must(req{method: "PUT", path: fmt.Sprintf("/bucket-%d", i)}, 200)
	}
	if r := e.alice.do(req{method: "PUT", path: "/bucket-5"}); r.status != 400 || r.code() != "TooManyBuckets" {
		t.Fatalf("got %d %s", r.status, r.code())
	}
}

func TestObjectHeadersAndRanges(t *testing.T) {
	e := newEnv(t)
	a := e.alice
	a.must(req{method: "PUT", path: "/bkt1"}, 200)
	body := "0123456789"
	h := map[string]string{
		"Content-Type": "text/plain", "Content-Disposition": "attachment", "Content-Encoding": "deflate, gzip",
		"Cache-Control": "no-cache", "Expires": "Thu, 01 Dec 1994 16:00:00 GMT", "x-amz-meta-Color": "blue",
		"Content-MD5": b64md5(body), "x-amz-checksum-crc32c": crc32cB64(body),
	}
	put := a.must(req{method: "PUT", path: "/bkt1/dir/obj%20name", body: body, header: h}, 200)
	if put.header.Get("ETag") != md5hex(body) || put.header.Get("x-amz-checksum-crc32c") != crc32cB64(body) {
		t.Fatalf("put headers %v", put.header)
	}
	get := a.must(req{method: "GET", path: "/bkt1/dir/obj%20name", header: map[string]string{"x-amz-checksum-mode": "ENABLED"}}, 200)
	for k, v := range map[string]string{
		"Content-Type": "text/plain", "Content-Disposition": "attachment", "Content-Encoding": "deflate, gzip",
		"Cache-Control": "no-cache", "Expires": "Thu, 01 Dec 1994 16:00:00 GMT", "X-Amz-Meta-Color": "blue",
		"ETag": md5hex(body), "Content-Length": "10", "Accept-Ranges": "bytes", "x-amz-checksum-crc32c": crc32cB64(body),
	} {
		if got := get.header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if get.body != body {
		t.Fatalf("body %q", get.body)
	}
	for _, tc := range []struct{ rng, want, cr string }{
		{"bytes=2-4", "234", "bytes 2-4/10"},
		{"bytes=7-", "789", "bytes 7-9/10"},
		{"bytes=-3", "789", "bytes 7-9/10"},
		{"bytes=5-100", "56789", "bytes 5-9/10"},
	} {
		r := a.must(req{method: "GET", path: "/bkt1/dir/obj%20name", header: map[string]string{"Range": tc.rng}}, 206)
		if r.body != tc.want || r.header.Get("Content-Range") != tc.cr {
			t.Errorf("%s: %q %q", tc.rng, r.body, r.header.Get("Content-Range"))
		}
	}
	over := a.must(req{method: "GET", path: "/bkt1/dir/obj%20name?response-content-type=x/y&response-cache-control=max-age%3D1"}, 200)
	if over.header.Get("Content-Type") != "x/y" || over.header.Get("Cache-Control") != "max-age=1" {
		t.Errorf("overrides: %v", over.header)
	}
	lm := get.header.Get("Last-Modified")
	a.must(req{method: "GET", path: "/bkt1/dir/obj%20name", header: map[string]string{"If-Modified-Since": lm}}, 304)
	a.must(req{method: "GET", path: "/bkt1/dir/obj%20name", header: map[string]string{"If-Unmodified-Since": "Thu, 01 Dec 1994 16:00:00 GMT"}}, 412)
	a.must(req{method: "GET", path: "/bkt1/dir/obj%20name", header: map[string]string{"If-Match": md5hex(body), "If-Unmodified-Since": "Thu, 01 Dec 1994 16:00:00 GMT"}}, 200)
	// The same object by virtual-host and legacy addressing.
	if r := a.must(req{method: "GET", path: "/dir/obj%20name", host: "bkt1.s3.test"}, 200); r.body != body {
		t.Errorf("virtual host: %q", r.body)
	}
	if r := a.must(req{method: "GET", path: "/services/Walrus/bkt1/dir/obj%20name"}, 200); r.body != body {
		t.Errorf("legacy prefix: %q", r.body)
	}
}

func crc32cB64(s string) string {
	h := newHash("CRC32C")
	h.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func TestACLs(t *testing.T) {
	e := newEnv(t)
	a, b, anon := e.alice, e.bob, e.anon
	a.must(req{method: "PUT", path: "/pub", header: map[string]string{"x-amz-acl": "public-read"}}, 200)
	a.must(req{method: "PUT", path: "/pub/open", body: "o", header: map[string]string{"x-amz-acl": "public-read"}}, 200)
	a.must(req{method: "PUT", path: "/pub/closed", body: "c"}, 200)
	anon.must(req{method: "GET", path: "/pub"}, 200)
	anon.must(req{method: "GET", path: "/pub/open"}, 200)
	anon.must(req{method: "GET", path: "/pub/closed"}, 403)
	b.must(req{method: "GET", path: "/pub/closed"}, 403)
	anon.must(req{method: "PUT", path: "/pub/new", body: "x"}, 403)
	// Grant bob read on one object by email.
	a.must(req{method: "PUT", path: "/pub/closed?acl", header: map[string]string{"x-amz-grant-read": `emailAddress="bob@example.com"`}}, 200)
	b.must(req{method: "GET", path: "/pub/closed"}, 200)
	anon.must(req{method: "GET", path: "/pub/closed"}, 403)
	acl := a.must(req{method: "GET", path: "/pub/closed?acl"}, 200).body
	if !strings.Contains(acl, "<ID>bob-cid</ID>") || !strings.Contains(acl, "<Permission>READ</Permission>") {
		t.Fatalf("acl document: %s", acl)
	}
	// Replace the ACL with a document: back to private.
	doc := `<AccessControlPolicy><Owner><ID>alice-cid</ID></Owner><AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>alice-cid</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>`
	a.must(req{method: "PUT", path: "/pub/closed?acl", body: doc}, 200)
	b.must(req{method: "GET", path: "/pub/closed"}, 403)
	// aws-exec-read shows EC2's grant.
	a.must(req{method: "PUT", path: "/pub/image.manifest.xml", body: "m", header: map[string]string{"x-amz-acl": "aws-exec-read"}}, 200)
	if body := a.must(req{method: "GET", path: "/pub/image.manifest.xml?acl"}, 200).body; !strings.Contains(body, "za-team") {
		t.Fatalf("aws-exec-read acl: %s", body)
	}
	// Listing buckets shows only one's own.
	b.must(req{method: "PUT", path: "/bobs"}, 200)
	if body := b.must(req{method: "GET", path: "/"}, 200).body; strings.Contains(body, "pub") || !strings.Contains(body, "bobs") {
		t.Fatalf("bob's bucket list: %s", body)
	}
	// Presigned-style anonymous response overrides are refused.
	anon.must(req{method: "GET", path: "/pub/open?response-content-type=x"}, 400)
}

func TestListV2Pages(t *testing.T) {
	e := newEnv(t)
	a := e.alice
	a.must(req{method: "PUT", path: "/lst"}, 200)
	keys := []string{"a+b", "a b", "dir/x", "dir/y", "z"}
	for _, k := range keys {
		a.must(req{method: "PUT", path: "/lst/" + strings.ReplaceAll(strings.ReplaceAll(k, " ", "%20"), "+", "%2B"), body: k}, 200)
	}
	var got []string
	token := ""
	for range 10 {
		path := "/lst?list-type=2&max-keys=2&delimiter=/&encoding-type=url"
		if token != "" {
			path += "&continuation-token=" + token
		}
		var res struct {
			Contents              []struct{ Key string }
			CommonPrefixes        []struct{ Prefix string }
			IsTruncated           bool
			NextContinuationToken string
			KeyCount              int
		}
		if err := xml.Unmarshal([]byte(a.must(req{method: "GET", path: path}, 200).body), &res); err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Contents {
			got = append(got, c.Key)
		}
		for _, p := range res.CommonPrefixes {
			got = append(got, p.Prefix)
		}
		if res.KeyCount != len(res.Contents)+len(res.CommonPrefixes) {
			t.Errorf("KeyCount %d", res.KeyCount)
		}
		if !res.IsTruncated {
			break
		}
		token = res.NextContinuationToken
	}
	sort.Strings(got)
	if strings.Join(got, ",") != "a%20b,a%2Bb,dir/,z" {
		t.Fatalf("pages: %v", got)
	}
	// An empty token starts at the beginning and is echoed.
	body := a.must(req{method: "GET", path: "/lst?list-type=2&continuation-token="}, 200).body
	if !strings.Contains(body, "<ContinuationToken></ContinuationToken>") || !strings.Contains(body, "<KeyCount>5</KeyCount>") {
		t.Fatalf("empty continuation token: %s", body)
	}
}

func TestMultipartChecksums(t *testing.T) {
	e := newEnv(t)
	a := e.alice
	a.must(req{method: "PUT", path: "/mpu"}, 200)
	for _, typ := range []string{"COMPOSITE", "FULL_OBJECT"} {
		t.Run(typ, func(t *testing.T) {
			a.t = t
			r := a.must(req{method: "POST", path: "/mpu/obj?uploads", header: map[string]string{"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": typ}}, 200)
			var init struct{ UploadId string }
			xml.Unmarshal([]byte(r.body), &init)
			p1 := strings.Repeat("a", 1<<10)
			p2 := "tail"
			e1 := a.must(req{method: "PUT", path: "/mpu/obj?partNumber=1&uploadId=" + init.UploadId, body: p1}, 200).header.Get("ETag")
			e2 := a.must(req{method: "PUT", path: "/mpu/obj?partNumber=2&uploadId=" + init.UploadId, body: p2, header: map[string]string{"x-amz-checksum-crc32": crc32B64(p2)}}, 200).header.Get("ETag")
			list := a.must(req{method: "GET", path: "/mpu/obj?uploadId=" + init.UploadId}, 200).body
			if !strings.Contains(list, "<ChecksumCRC32>"+crc32B64(p1)+"</ChecksumCRC32>") {
				t.Fatalf("list parts: %s", list)
			}
			want := crc32B64(p1 + p2)
			if typ == "COMPOSITE" {
				raw1, _ := base64.StdEncoding.DecodeString(crc32B64(p1))
				raw2, _ := base64.StdEncoding.DecodeString(crc32B64(p2))
				want = crc32B64(string(raw1)+string(raw2)) + "-2"
				// COMPOSITE needs every part's checksum listed.
				r := a.do(req{method: "POST", path: "/mpu/obj?uploadId=" + init.UploadId, body: complete(1, e1, 2, e2)})
				if r.status != 400 || r.code() != "InvalidRequest" {
					t.Fatalf("complete without part checksums: %d %s", r.status, r.code())
				}
			}
			withSums := strings.Replace(strings.Replace(complete(1, e1, 2, e2),
				"</ETag></Part>", "</ETag><ChecksumCRC32>"+crc32B64(p1)+"</ChecksumCRC32></Part>", 1),
				e2+"</ETag></Part>", e2+"</ETag><ChecksumCRC32>"+crc32B64(p2)+"</ChecksumCRC32></Part>", 1)
			path := "/mpu/obj?uploadId=" + init.UploadId
			r = a.do(req{method: "POST", path: path, body: withSums, header: map[string]string{"x-amz-checksum-crc32": crc32B64("wrong")}})
			if r.status != 400 || r.code() != "BadDigest" {
				t.Fatalf("complete with a wrong object checksum: %d %s", r.status, r.code())
			}
			done := a.must(req{method: "POST", path: path, body: withSums, header: map[string]string{"x-amz-checksum-crc32": strings.TrimSuffix(want, "-2")}}, 200).body
			// A retried Complete gets the same answer.
			if again := a.must(req{method: "POST", path: path, body: withSums}, 200).body; again != done {
				t.Fatalf("retried complete:\n%s\n%s", again, done)
			}
			if !strings.Contains(done, "<ChecksumCRC32>"+want+"</ChecksumCRC32>") {
				t.Fatalf("complete: %s (want %s)", done, want)
			}
			got := a.must(req{method: "GET", path: "/mpu/obj", header: map[string]string{"x-amz-checksum-mode": "ENABLED"}}, 200)
			if got.body != p1+p2 || got.header.Get("x-amz-checksum-crc32") != want {
				t.Fatalf("get: %d bytes, checksum %s", len(got.body), got.header.Get("x-amz-checksum-crc32"))
			}
			attrs := a.must(req{method: "GET", path: "/mpu/obj?attributes", header: map[string]string{
				"x-amz-object-attributes": "ETag,Checksum,ObjectParts,ObjectSize", "x-amz-max-parts": "1"}}, 200).body
			for _, want := range []string{"<ChecksumCRC32>" + want + "</ChecksumCRC32>", "<ChecksumType>" + typ + "</ChecksumType>",
				"<PartsCount>2</PartsCount>", "<PartNumber>1</PartNumber><Size>1024</Size>", "<IsTruncated>true</IsTruncated>",
				"<ObjectSize>1028</ObjectSize>"} {
				if !strings.Contains(attrs, want) {
					t.Errorf("attributes lack %s: %s", want, attrs)
				}
			}
			part := a.must(req{method: "GET", path: "/mpu/obj?partNumber=2"}, 206)
			if part.body != p2 || part.header.Get("x-amz-mp-parts-count") != "2" {
				t.Fatalf("part 2: %q %v", part.body, part.header)
			}
		})
	}
}

func crc32B64(s string) string {
	h := newHash("CRC32")
	h.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func TestCrcCombine(t *testing.T) {
	a, b := []byte("hello, "), bytes.Repeat([]byte("world"), 1000)
	for _, alg := range []string{"CRC32", "CRC32C", "CRC64NVME"} {
		parts := []objstore.Part{
			{Number: 1, Size: int64(len(a)), Checksum: &objstore.Checksum{Algorithm: alg, Value: sum64(alg, a)}},
			{Number: 2, Size: int64(len(b)), Checksum: &objstore.Checksum{Algorithm: alg, Value: sum64(alg, b)}},
		}
		got, err := fullObject(alg, parts)
		if err != nil {
			t.Fatal(err)
		}
		if want := sum64(alg, append(append([]byte{}, a...), b...)); got != want {
			t.Errorf("%s: combined %s, want %s", alg, got, want)
		}
	}
}

func sum64(alg string, data []byte) string {
	h := newHash(alg)
	h.Write(data)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func TestCRC64NVMECheckValue(t *testing.T) {
	h := newHash("CRC64NVME")
	h.Write([]byte("123456789"))
	if got := hex.EncodeToString(h.Sum(nil)); got != "ae8b14860a799888" {
		t.Fatalf("CRC-64/NVME check value %s", got)
	}
}

func TestCopyAndDeleteObjects(t *testing.T) {
	e := newEnv(t)
	a := e.alice
	a.must(req{method: "PUT", path: "/cpy"}, 200)
	a.must(req{method: "PUT", path: "/cpy/src", body: "payload", header: map[string]string{"x-amz-meta-a": "1", "Content-Type": "text/x"}}, 200)
	r := a.must(req{method: "PUT", path: "/cpy/copy", header: map[string]string{"x-amz-copy-source": "/cpy/src"}}, 200)
	if !strings.Contains(r.body, md5hex("payload")[1:33]) {
		t.Fatalf("copy result: %s", r.body)
	}
	g := a.must(req{method: "GET", path: "/cpy/copy"}, 200)
	if g.body != "payload" || g.header.Get("x-amz-meta-a") != "1" || g.header.Get("Content-Type") != "text/x" {
		t.Fatalf("copy: %q %v", g.body, g.header)
	}
	a.must(req{method: "PUT", path: "/cpy/src", header: map[string]string{"x-amz-copy-source": "cpy/src", "x-amz-metadata-directive": "REPLACE", "x-amz-meta-b": "2"}}, 200)
	g = a.must(req{method: "HEAD", path: "/cpy/src"}, 200)
	if g.header.Get("x-amz-meta-b") != "2" || g.header.Get("x-amz-meta-a") != "" {
		t.Fatalf("in-place replace: %v", g.header)
	}
	a.must(req{method: "PUT", path: "/cpy/nope", header: map[string]string{"x-amz-copy-source": "/cpy/src", "x-amz-copy-source-if-match": `"zzz"`}}, 412)
	e.bob.must(req{method: "PUT", path: "/bobs"}, 200)
	e.bob.must(req{method: "PUT", path: "/bobs/stolen", header: map[string]string{"x-amz-copy-source": "/cpy/src"}}, 403)

	del := "<Delete><Object><Key>copy</Key></Object><Object><Key>missing</Key></Object></Delete>"
	r = a.must(req{method: "POST", path: "/cpy?delete", body: del, header: map[string]string{"Content-MD5": b64md5(del)}}, 200)
	if strings.Count(r.body, "<Deleted>") != 2 {
		t.Fatalf("delete result: %s", r.body)
	}
	quiet := "<Delete><Quiet>true</Quiet><Object><Key>src</Key></Object></Delete>"
	r = a.must(req{method: "POST", path: "/cpy?delete", body: quiet, header: map[string]string{"Content-MD5": b64md5(quiet)}}, 200)
	if strings.Contains(r.body, "<Deleted>") {
		t.Fatalf("quiet delete result: %s", r.body)
	}
	a.must(req{method: "DELETE", path: "/cpy"}, 204)
}

func TestPresignedAndUnsignedPayload(t *testing.T) {
	e := newEnv(t)
	a := e.alice
	a.must(req{method: "PUT", path: "/pre"}, 200)
	a.must(req{method: "PUT", path: "/pre/k", body: "streamed", unsigned: true}, 200)
	r, _ := http.NewRequest("GET", e.url+"/pre/k", nil)
	if err := sigv4.Presign(r, "AKIDALICE", "alice-secret", "us-east-1", "s3", time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(r.URL.String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "streamed" {
		t.Fatalf("presigned get: %d %s", res.StatusCode, b)
	}
	r, _ = http.NewRequest("GET", e.url+"/pre/k", nil)
	sigv4.Presign(r, "AKIDALICE", "alice-secret", "us-east-1", "s3", time.Now().Add(-2*time.Minute), time.Minute)
	res, err = http.Get(r.URL.String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 403 || !strings.Contains(string(b), "Request has expired") {
		t.Fatalf("expired presigned get: %d %s", res.StatusCode, b)
	}
}

func TestEmptyBodyWithExpectClosesConnection(t *testing.T) {
	e := newEnv(t)
	e.alice.must(req{method: "PUT", path: "/exp"}, 200)
	r := e.alice.must(req{method: "PUT", path: "/exp/empty", header: map[string]string{"Expect": "100-continue"}}, 200)
	if !r.close {
		t.Fatal("empty PUT with Expect: the connection stays open")
	}
	r = e.alice.must(req{method: "PUT", path: "/exp/full", body: "x", header: map[string]string{"Expect": "100-continue"}}, 200)
	if r.close {
		t.Fatal("a PUT with a body closes its connection")
	}
}

func TestMissingContentLength(t *testing.T) {
	e := newEnv(t)
	e.alice.must(req{method: "PUT", path: "/mcl"}, 200)
	r, _ := http.NewRequest("PUT", e.url+"/mcl/k", io.MultiReader(strings.NewReader("chunked body")))
	r.ContentLength = -1
	if err := sigv4.Sign(r, "AKIDALICE", "alice-secret", "us-east-1", "s3", sigv4.UnsignedPayload, time.Now()); err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 411 || !strings.Contains(string(body), "<Code>MissingContentLength</Code>") {
		t.Fatalf("got %d %s", res.StatusCode, body)
	}
}

func TestRecreateOwnBucketOutsideUSEast1(t *testing.T) {
	e := newEnvIn(t, "local")
	e.alice.must(req{method: "PUT", path: "/mine"}, 200)
	if r := e.alice.do(req{method: "PUT", path: "/mine"}); r.status != 409 || r.code() != "BucketAlreadyOwnedByYou" {
		t.Fatalf("got %d %s", r.status, r.code())
	}
	loc := e.alice.must(req{method: "GET", path: "/mine?location"}, 200).body
	if !strings.Contains(loc, ">local</LocationConstraint>") {
		t.Fatalf("location: %s", loc)
	}
}

func TestConditionalWrites(t *testing.T) {
	e := newEnv(t)
	a := e.alice
	a.must(req{method: "PUT", path: "/cond"}, 200)
	a.must(req{method: "PUT", path: "/cond/k", body: "v1", header: map[string]string{"If-None-Match": "*"}}, 200)
	cases := []struct {
		name   string
		r      req
		status int
		code   string
	}{
		{"create over existing", req{method: "PUT", path: "/cond/k", body: "v2", header: map[string]string{"If-None-Match": "*"}}, 412, "PreconditionFailed"},
		{"if-none-match the etag", req{method: "PUT", path: "/cond/k", body: "v2", header: map[string]string{"If-None-Match": md5hex("v1")}}, 412, "PreconditionFailed"},
		{"if-none-match another etag", req{method: "PUT", path: "/cond/k", body: "v1", header: map[string]string{"If-None-Match": `"abc"`}}, 200, ""},
		{"if-match any, missing", req{method: "PUT", path: "/cond/none", body: "v2", header: map[string]string{"If-Match": "*"}}, 404, "NoSuchKey"},
		{"replace with wrong etag", req{method: "PUT", path: "/cond/k", body: "v2", header: map[string]string{"If-Match": `"abc"`}}, 412, "PreconditionFailed"},
		{"replace missing", req{method: "PUT", path: "/cond/none", body: "v2", header: map[string]string{"If-Match": md5hex("v1")}}, 404, "NoSuchKey"},
		{"delete with wrong etag", req{method: "DELETE", path: "/cond/k", header: map[string]string{"If-Match": `"abc"`}}, 412, "PreconditionFailed"},
		{"delete missing with etag", req{method: "DELETE", path: "/cond/none", header: map[string]string{"If-Match": `"abc"`}}, 204, ""},
		{"replace with right etag", req{method: "PUT", path: "/cond/k", body: "v2", header: map[string]string{"If-Match": md5hex("v1")}}, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a.t = t
			r := a.do(tc.r)
			if r.status != tc.status || r.code() != tc.code {
				t.Fatalf("got %d %q want %d %q: %s", r.status, r.code(), tc.status, tc.code, r.body)
			}
		})
	}
	a.t = t
	if got := a.must(req{method: "GET", path: "/cond/k"}, 200).body; got != "v2" {
		t.Fatalf("after conditional writes: %q", got)
	}
	del := "<Delete><Object><Key>k</Key><ETag>\"abc\"</ETag></Object></Delete>"
	r := a.must(req{method: "POST", path: "/cond?delete", body: del, header: map[string]string{"Content-MD5": b64md5(del)}}, 200)
	if !strings.Contains(r.body, "<Code>PreconditionFailed</Code>") {
		t.Fatalf("delete objects with a wrong etag: %s", r.body)
	}
	// A conditional CompleteMultipartUpload fails without losing the upload.
	init := a.must(req{method: "POST", path: "/cond/k?uploads"}, 200).body
	var u struct{ UploadId string }
	xml.Unmarshal([]byte(init), &u)
	etag := a.must(req{method: "PUT", path: "/cond/k?partNumber=1&uploadId=" + u.UploadId, body: "part"}, 200).header.Get("ETag")
	a.must(req{method: "POST", path: "/cond/k?uploadId=" + u.UploadId, body: complete(1, etag), header: map[string]string{"If-None-Match": "*"}}, 412)
	a.must(req{method: "POST", path: "/cond/k?uploadId=" + u.UploadId, body: complete(1, etag), header: map[string]string{"If-Match": md5hex("v2")}}, 200)
	a.must(req{method: "DELETE", path: "/cond/k", header: map[string]string{"If-Match": etag[:1] + md5hex("v2")[1:]}}, 412)
}

func TestListBucketsPages(t *testing.T) {
	e := newEnv(t)
	for _, b := range []string{"pa-1", "pa-2", "pa-3", "other"} {
		e.alice.must(req{method: "PUT", path: "/" + b}, 200)
	}
	var names []string
	token := ""
	for range 5 {
		path := "/?prefix=pa-&max-buckets=2"
		if token != "" {
			path += "&continuation-token=" + token
		}
		var res struct {
			Buckets           []struct{ Name, BucketRegion string } `xml:"Buckets>Bucket"`
			ContinuationToken string
			Prefix            string
		}
		if err := xml.Unmarshal([]byte(e.alice.must(req{method: "GET", path: path}, 200).body), &res); err != nil {
			t.Fatal(err)
		}
		if res.Prefix != "pa-" {
			t.Errorf("prefix %q", res.Prefix)
		}
		for _, b := range res.Buckets {
			names = append(names, b.Name+"@"+b.BucketRegion)
		}
		if token = res.ContinuationToken; token == "" {
			break
		}
	}
	if got := strings.Join(names, ","); got != "pa-1@us-east-1,pa-2@us-east-1,pa-3@us-east-1" {
		t.Fatalf("buckets %s", got)
	}
	if r := e.alice.do(req{method: "GET", path: "/?max-buckets=abc"}); r.status != 400 || r.code() != "InvalidArgument" {
		t.Fatalf("bad max-buckets: %d %s", r.status, r.code())
	}
}
