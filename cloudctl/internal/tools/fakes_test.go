package tools

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// fixtureKeys holds the bundle fixtures' throw-away keys.
var fixtureKeys = filepath.Join("..", "..", "..", "testdata", "bundles", "keys")

func keyPath(name string) string { return filepath.Join(fixtureKeys, name) }

func mustCert(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	c, err := LoadCert(keyPath(name))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustKey(t *testing.T, name string) *rsa.PrivateKey {
	t.Helper()
	k, err := LoadKey(keyPath(name))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fakeS3 is an in-memory S3 that answers path-style and virtual-host
// requests and records what it was asked.
type fakeS3 struct {
	t       *testing.T
	srv     *httptest.Server
	domain  string // virtual-host requests come to BUCKET.domain
	mu      sync.Mutex
	buckets map[string]map[string][]byte // bucket -> key -> data
	acls    map[string]string            // bucket/key -> x-amz-acl
	puts    []string                     // bucket/key in the order stored
	hosts   []string                     // Host of each request
	denyPut func(key string) bool        // PutObject answers AccessDenied
}

func newFakeS3(t *testing.T) *fakeS3 {
	f := &fakeS3{t: t, domain: "s3.test", buckets: map[string]map[string][]byte{}, acls: map[string]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeS3) objects(bucket string) map[string][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range f.buckets[bucket] {
		out[k] = v
	}
	return out
}

func (f *fakeS3) hasBucket(bucket string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.buckets[bucket]
	return ok
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<Error><Code>%s</Code><Message>%s</Message></Error>", code, code)
}

func (f *fakeS3) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		s3Error(w, http.StatusForbidden, "AccessDenied")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hosts = append(f.hosts, r.Host)
	var bucket, key string
	host, _, _ := net.SplitHostPort(r.Host)
	if b, ok := strings.CutSuffix(host, "."+f.domain); ok {
		bucket, key = b, strings.TrimPrefix(r.URL.Path, "/")
	} else {
		bucket, key, _ = strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	}
	objs, exists := f.buckets[bucket]
	switch {
	case key == "" && r.Method == http.MethodHead:
		if !exists {
			w.WriteHeader(http.StatusNotFound)
		}
	case key == "" && r.Method == http.MethodPut:
		if exists {
			s3Error(w, http.StatusConflict, "BucketAlreadyOwnedByYou")
			return
		}
		f.buckets[bucket] = map[string][]byte{}
	case key == "" && r.Method == http.MethodDelete:
		if len(objs) > 0 {
			s3Error(w, http.StatusConflict, "BucketNotEmpty")
			return
		}
		delete(f.buckets, bucket)
		w.WriteHeader(http.StatusNoContent)
	case key == "" && r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2":
		if !exists {
			s3Error(w, http.StatusNotFound, "NoSuchBucket")
			return
		}
		keys := make([]string, 0, len(objs))
		for k := range objs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(keys) > 1 {
			keys = keys[:1] // MaxKeys=1 is all the tools ask for
		}
		var b strings.Builder
		fmt.Fprintf(&b, "<ListBucketResult><Name>%s</Name><KeyCount>%d</KeyCount><IsTruncated>false</IsTruncated>", bucket, len(keys))
		for _, k := range keys {
			fmt.Fprintf(&b, "<Contents><Key>%s</Key><Size>%d</Size></Contents>", k, len(objs[k]))
		}
		b.WriteString("</ListBucketResult>")
		w.Header().Set("Content-Type", "application/xml")
		io.WriteString(w, b.String())
	case !exists:
		s3Error(w, http.StatusNotFound, "NoSuchBucket")
	case r.Method == http.MethodPut:
		if f.denyPut != nil && f.denyPut(key) {
			s3Error(w, http.StatusForbidden, "AccessDenied")
			return
		}
		data, err := io.ReadAll(r.Body)
		if err != nil {
			s3Error(w, http.StatusBadRequest, "IncompleteBody")
			return
		}
		objs[key] = data
		f.acls[bucket+"/"+key] = r.Header.Get("X-Amz-Acl")
		f.puts = append(f.puts, bucket+"/"+key)
		w.Header().Set("ETag", `"x"`)
	case r.Method == http.MethodHead:
		if _, ok := objs[key]; !ok {
			w.WriteHeader(http.StatusNotFound)
		}
	case r.Method == http.MethodGet:
		data, ok := objs[key]
		if !ok {
			s3Error(w, http.StatusNotFound, "NoSuchKey")
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data)
	case r.Method == http.MethodDelete:
		delete(objs, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		s3Error(w, http.StatusNotImplemented, "NotImplemented")
	}
}

// part returns a bundle.PartSource over one "directory" of a bucket.
type fakeParts struct {
	f      *fakeS3
	bucket string
	prefix string
}

func (p fakeParts) Part(ctx context.Context, name string) (io.ReadCloser, error) {
	data, ok := p.f.objects(p.bucket)[Place{p.bucket, p.prefix}.Key(name)]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// fakeImage is an image the fake EC2 knows.
type fakeImage struct {
	id, location, name, description, arch string
	states                                []string // states DescribeImages reports in turn; the last sticks
	reasonCode, reasonMessage             string
}

// fakeEC2 answers RegisterImage, DescribeImages and
// DescribeCloudCertificate.
type fakeEC2 struct {
	t        *testing.T
	srv      *httptest.Server
	certPEM  string
	mu       sync.Mutex
	images   map[string]*fakeImage
	actions  []string
	states   []string // the states a new image goes through
	reason   [2]string
	register func(location string) (code string) // an error code for RegisterImage, or ""
}

func newFakeEC2(t *testing.T, certPEM string) *fakeEC2 {
	f := &fakeEC2{t: t, certPEM: certPEM, images: map[string]*fakeImage{}, states: []string{"pending", "available"}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func ec2Error(w http.ResponseWriter, code, msg string) {
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, "<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>r</RequestID></Response>", code, msg)
}

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (f *fakeEC2) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		ec2Error(w, "AuthFailure", "not signed")
		return
	}
	body, _ := io.ReadAll(r.Body)
	q, _ := url.ParseQuery(string(body))
	f.mu.Lock()
	defer f.mu.Unlock()
	action := q.Get("Action")
	f.actions = append(f.actions, action)
	w.Header().Set("Content-Type", "text/xml")
	switch action {
	case "DescribeCloudCertificate":
		if f.certPEM == "" {
			ec2Error(w, "InvalidAction", "The action DescribeCloudCertificate is not valid for this web service.")
			return
		}
		fmt.Fprintf(w, "<DescribeCloudCertificateResponse><requestId>r</requestId><certificate>%s</certificate></DescribeCloudCertificateResponse>", xmlText(f.certPEM))
	case "RegisterImage":
		loc := q.Get("ImageLocation")
		if f.register != nil {
			if code := f.register(loc); code != "" {
				ec2Error(w, code, "refused "+loc)
				return
			}
		}
		img := &fakeImage{id: fmt.Sprintf("ami-%08d", len(f.images)+1), location: loc, name: q.Get("Name"),
			description: q.Get("Description"), arch: q.Get("Architecture"), states: slices.Clone(f.states),
			reasonCode: f.reason[0], reasonMessage: f.reason[1]}
		f.images[img.id] = img
		fmt.Fprintf(w, "<RegisterImageResponse><requestId>r</requestId><imageId>%s</imageId></RegisterImageResponse>", img.id)
	case "DescribeImages":
		img, ok := f.images[q.Get("ImageId.1")]
		if !ok {
			ec2Error(w, "InvalidAMIID.NotFound", "no such image")
			return
		}
		state := img.states[0]
		if len(img.states) > 1 {
			img.states = img.states[1:]
		}
		reason := ""
		if img.reasonCode != "" {
			reason = fmt.Sprintf("<stateReason><code>%s</code><message>%s</message></stateReason>", img.reasonCode, xmlText(img.reasonMessage))
		}
		fmt.Fprintf(w, "<DescribeImagesResponse><requestId>r</requestId><imagesSet><item><imageId>%s</imageId><imageLocation>%s</imageLocation><imageState>%s</imageState>%s<name>%s</name></item></imagesSet></DescribeImagesResponse>",
			img.id, xmlText(img.location), state, reason, xmlText(img.name))
	default:
		ec2Error(w, "InvalidAction", action)
	}
}

func (f *fakeEC2) image(id string) fakeImage {
	f.mu.Lock()
	defer f.mu.Unlock()
	if img, ok := f.images[id]; ok {
		return *img
	}
	return fakeImage{}
}

// testEnv is the environment of a tool run against the fakes.
func testEnv(s3f *fakeS3, ec2f *fakeEC2, extra map[string]string) func(string) string {
	env := map[string]string{
		"AWS_ACCESS_KEY_ID":     "AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY": "secret",
		"EC2_CERT":              keyPath("user-cert.pem"),
		"EC2_PRIVATE_KEY":       keyPath("user-pk.pem"),
		"EC2_ACCOUNT_NUMBER":    "123456789012",
	}
	if s3f != nil {
		env["S3_URL"] = s3f.srv.URL
	}
	if ec2f != nil {
		env["EC2_URL"] = ec2f.srv.URL + "/"
	}
	for k, v := range extra {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	return func(k string) string { return env[k] }
}

// runTool runs Run and returns the exit status and both outputs.
func runTool(t *testing.T, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(t.Context(), args, getenv, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// writeImage writes n pseudo-random bytes to a file in dir.
func writeImage(t *testing.T, dir, name string, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	var x uint32 = 2463534242
	for i := range data {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		data[i] = byte(x)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}
