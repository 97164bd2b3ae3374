//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// newSDKClient returns an aws-sdk-go-v2 S3 client for endpoint, path
// style, signing as a; opts adjust it further.
func newSDKClient(endpoint string, a account, opts ...func(*s3.Options)) *s3.Client {
	base := func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	}
	return s3.NewFromConfig(sdkConfig(a), append([]func(*s3.Options){base}, opts...)...)
}

// sdkConfig is the aws-sdk-go-v2 configuration of a client in us-east-1
// signing as a.
func sdkConfig(a account) aws.Config {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(a.AccessKeyID, a.SecretAccessKey, ""),
	}
}

// anonymousSDKClient sends unsigned requests.
func anonymousSDKClient(endpoint string) *s3.Client {
	return s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}},
		func(o *s3.Options) {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		})
}

// apiError returns the HTTP status and S3 error code of an SDK error.
func apiError(err error) (int, string) {
	var status int
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var code string
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return status, code
}

// crc32Base64 is the x-amz-checksum-crc32 value of data.
func crc32Base64(data []byte) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], crc32.ChecksumIEEE(data))
	return base64.StdEncoding.EncodeToString(b[:])
}

func getObject(ctx context.Context, t *testing.T, c *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("GetObject %s/%s: read body: %v", bucket, key, err)
	}
	return data
}

// tlsProxy is a TLS front for walrus that passes requests through
// untouched, so that the SDK, which sends trailing checksums only over
// TLS, uses them. It records the headers of each request.
type tlsProxy struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []http.Header
}

func newTLSProxy(t *testing.T, w *walrus) *tlsProxy {
	target, err := url.Parse(w.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsProxy{}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host // the signature covers it
	}}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.got = append(p.got, r.Header.Clone())
		p.mu.Unlock()
		rp.ServeHTTP(rw, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *tlsProxy) headers() []http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

func TestSDKGoV2(t *testing.T) {
	w := startWalrus(t)
	ctx := t.Context()
	c := newSDKClient(w.endpoint, w.a)
	const bucket = "sdk-bucket"

	t.Run("CreateBucket", func(t *testing.T) {
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatalf("CreateBucket: %v", err)
		}
	})

	crcData := randomBytes(40, 1<<20+5)
	t.Run("PutObject CRC32", func(t *testing.T) {
		// Over plain HTTP the SDK signs the payload and sends the CRC32 in
		// a header.
		out, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("crc.bin"), Body: bytes.NewReader(crcData),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
			Metadata:          map[string]string{"color": "red"},
			ContentType:       aws.String("application/x-e2e"),
		})
		if err != nil {
			t.Fatalf("PutObject: %v", err)
		}
		if got, want := aws.ToString(out.ChecksumCRC32), crc32Base64(crcData); got != want {
			t.Errorf("PutObject ChecksumCRC32 = %q, want %q", got, want)
		}
		if got := unquote(aws.ToString(out.ETag)); got != md5Hex(crcData) {
			t.Errorf("PutObject ETag = %s, want the MD5 %s", got, md5Hex(crcData))
		}
	})

	t.Run("PutObject CRC32 trailer over TLS", func(t *testing.T) {
		proxy := newTLSProxy(t, w)
		tc := newSDKClient(proxy.srv.URL, w.a, func(o *s3.Options) { o.HTTPClient = proxy.srv.Client() })
		data := randomBytes(41, 3<<20+11)
		// An unseekable body, as from a pipe.
		out, err := tc.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("trailer.bin"),
			Body: struct{ io.Reader }{bytes.NewReader(data)}, ContentLength: aws.Int64(int64(len(data))),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		var sent http.Header
		for _, h := range proxy.headers() {
			if h.Get("X-Amz-Trailer") != "" {
				sent = h
			}
		}
		if sent == nil {
			t.Fatalf("the SDK sent no request with X-Amz-Trailer; headers: %v", proxy.headers())
		}
		if got := sent.Get("X-Amz-Content-Sha256"); got != "STREAMING-UNSIGNED-PAYLOAD-TRAILER" {
			t.Errorf("X-Amz-Content-Sha256 = %q, want STREAMING-UNSIGNED-PAYLOAD-TRAILER", got)
		}
		if err != nil {
			t.Fatalf("PutObject with a trailing CRC32 (headers %v): %v", sent, err)
		}
		if got, want := aws.ToString(out.ChecksumCRC32), crc32Base64(data); got != want {
			t.Errorf("PutObject ChecksumCRC32 = %q, want %q", got, want)
		}
		if got := getObject(ctx, t, c, bucket, "trailer.bin"); sha256Hex(got) != sha256Hex(data) {
			t.Errorf("GetObject after a trailer upload: %d bytes, sha256 %s; want %d, %s",
				len(got), sha256Hex(got), len(data), sha256Hex(data))
		}
	})

	t.Run("GetObject ChecksumMode", func(t *testing.T) {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("crc.bin"), ChecksumMode: types.ChecksumModeEnabled,
		})
		if err != nil {
			t.Fatalf("GetObject: %v", err)
		}
		defer out.Body.Close()
		// The SDK validates the body against the checksum as it reads.
		data, err := io.ReadAll(out.Body)
		if err != nil {
			t.Fatalf("GetObject: read body: %v", err)
		}
		if sha256Hex(data) != sha256Hex(crcData) {
			t.Errorf("GetObject sha256 %s, want %s", sha256Hex(data), sha256Hex(crcData))
		}
		if got, want := aws.ToString(out.ChecksumCRC32), crc32Base64(crcData); got != want {
			t.Errorf("GetObject with ChecksumMode ENABLED: ChecksumCRC32 = %q, want %q", got, want)
		}
	})

	t.Run("HeadObject", func(t *testing.T) {
		out, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("crc.bin")})
		if err != nil {
			t.Fatalf("HeadObject: %v", err)
		}
		if aws.ToInt64(out.ContentLength) != int64(len(crcData)) || unquote(aws.ToString(out.ETag)) != md5Hex(crcData) {
			t.Errorf("HeadObject ContentLength, ETag = %d, %s; want %d, %s",
				aws.ToInt64(out.ContentLength), aws.ToString(out.ETag), len(crcData), md5Hex(crcData))
		}
		if out.Metadata["color"] != "red" || aws.ToString(out.ContentType) != "application/x-e2e" {
			t.Errorf("HeadObject Metadata, ContentType = %v, %q; want color=red, application/x-e2e",
				out.Metadata, aws.ToString(out.ContentType))
		}
		_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("no-such-key")})
		if status, _ := apiError(err); status != 404 {
			t.Errorf("HeadObject of a missing key: %v, want 404", err)
		}
	})

	t.Run("PutObject 40 MiB whole", func(t *testing.T) {
		// One PutObject, no multipart: walrus writes it as 16 MiB segment
		// files; the client must see one object.
		data := randomBytes(42, 40<<20+3)
		out, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("whole.bin"), Body: bytes.NewReader(data),
		})
		if err != nil {
			t.Fatalf("PutObject: %v", err)
		}
		if got := unquote(aws.ToString(out.ETag)); got != md5Hex(data) {
			t.Errorf("PutObject ETag = %s, want the MD5 %s", got, md5Hex(data))
		}
		if got := getObject(ctx, t, c, bucket, "whole.bin"); sha256Hex(got) != sha256Hex(data) {
			t.Errorf("GetObject: %d bytes, sha256 %s; want %d, %s", len(got), sha256Hex(got), len(data), sha256Hex(data))
		}
		const from, to = 16<<20 - 100, 32<<20 + 99 // across both segment boundaries
		rng, err := c.GetObject(ctx, &s3.GetObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("whole.bin"), Range: aws.String(fmt.Sprintf("bytes=%d-%d", from, to)),
		})
		if err != nil {
			t.Fatalf("GetObject Range: %v", err)
		}
		part, err := io.ReadAll(rng.Body)
		rng.Body.Close()
		if err != nil || !bytes.Equal(part, data[from:to+1]) {
			t.Errorf("GetObject Range: %d bytes (%v), want %d matching", len(part), err, to+1-from)
		}
		if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("whole-copy.bin"), CopySource: aws.String(bucket + "/whole.bin"),
		}); err != nil {
			t.Fatalf("CopyObject: %v", err)
		}
		if got := getObject(ctx, t, c, bucket, "whole-copy.bin"); sha256Hex(got) != sha256Hex(data) {
			t.Errorf("GetObject of the copy: sha256 %s, want %s", sha256Hex(got), sha256Hex(data))
		}
		for _, k := range []string{"whole.bin", "whole-copy.bin"} {
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)}); err != nil {
				t.Fatalf("DeleteObject %s: %v", k, err)
			}
		}
	})

	t.Run("ListObjectsV2 paginator", func(t *testing.T) {
		var want []string
		for i := range 25 {
			key := fmt.Sprintf("page/%02d", i)
			want = append(want, key)
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(randomBytes(uint64(i), i)),
			}); err != nil {
				t.Fatalf("PutObject %s: %v", key, err)
			}
		}
		p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{
			Bucket: aws.String(bucket), Prefix: aws.String("page/"), MaxKeys: aws.Int32(10),
		})
		var got []string
		pages := 0
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("ListObjectsV2 page %d: %v", pages+1, err)
			}
			pages++
			if len(page.Contents) > 10 {
				t.Errorf("page %d has %d keys, MaxKeys is 10", pages, len(page.Contents))
			}
			for _, o := range page.Contents {
				got = append(got, aws.ToString(o.Key))
			}
			if pages > 10 {
				t.Fatal("the paginator does not end")
			}
		}
		if pages != 3 || !slices.Equal(got, want) {
			t.Errorf("%d pages with keys %q; want 3 pages with %q", pages, got, want)
		}
	})

	t.Run("upload manager", func(t *testing.T) {
		data := randomBytes(42, 30<<20)
		up := manager.NewUploader(c, func(u *manager.Uploader) {
			u.PartSize = 5 << 20
			u.Concurrency = 4
		})
		out, err := up.Upload(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("managed.bin"), Body: bytes.NewReader(data),
		})
		if err != nil {
			t.Fatalf("Upload: %v", err)
		}
		if want := multipartETag(data, 5<<20); unquote(aws.ToString(out.ETag)) != want {
			t.Errorf("Upload ETag = %s, want %s", aws.ToString(out.ETag), want)
		}

		down := manager.NewDownloader(c, func(d *manager.Downloader) {
			d.PartSize = 5 << 20
			d.Concurrency = 4
		})
		buf := manager.NewWriteAtBuffer(make([]byte, 0, len(data)))
		n, err := down.Download(ctx, buf, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("managed.bin")})
		if err != nil {
			t.Fatalf("Download: %v", err)
		}
		if n != int64(len(data)) || sha256Hex(buf.Bytes()) != sha256Hex(data) {
			t.Errorf("Download: %d bytes, sha256 %s; want %d, %s", n, sha256Hex(buf.Bytes()), len(data), sha256Hex(data))
		}
	})

	t.Run("presigned GET", func(t *testing.T) {
		pc := s3.NewPresignClient(c)
		req, err := pc.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("crc.bin")},
			s3.WithPresignExpires(10*time.Minute))
		if err != nil {
			t.Fatalf("PresignGetObject: %v", err)
		}
		hr, err := http.NewRequestWithContext(ctx, req.Method, req.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		hr.Header = req.SignedHeader.Clone()
		hr.Header.Del("Host")
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatalf("GET %s: %v", req.URL, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s\n%s", req.URL, resp.Status, body)
		}
		if sha256Hex(body) != sha256Hex(crcData) {
			t.Errorf("presigned GET sha256 %s, want %s", sha256Hex(body), sha256Hex(crcData))
		}
	})

	t.Run("virtual host", func(t *testing.T) {
		var mu sync.Mutex
		var hosts []string
		dialer := &net.Dialer{Timeout: 10 * time.Second}
		transport := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, w.addr)
		}}
		vc := newSDKClient("http://s3.localhost:"+w.port, w.a, func(o *s3.Options) {
			o.UsePathStyle = false
			o.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				mu.Lock()
				hosts = append(hosts, r.URL.Host)
				mu.Unlock()
				return transport.RoundTrip(r)
			})}
		})
		data := randomBytes(43, 100_000)
		if _, err := vc.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("vhost/obj.bin"), Body: bytes.NewReader(data),
		}); err != nil {
			t.Fatalf("virtual-host PutObject: %v", err)
		}
		if got := getObject(ctx, t, vc, bucket, "vhost/obj.bin"); sha256Hex(got) != sha256Hex(data) {
			t.Errorf("virtual-host GetObject sha256 %s, want %s", sha256Hex(got), sha256Hex(data))
		}
		if got := getObject(ctx, t, c, bucket, "vhost/obj.bin"); sha256Hex(got) != sha256Hex(data) {
			t.Errorf("path-style GetObject of a virtual-host upload: sha256 %s, want %s", sha256Hex(got), sha256Hex(data))
		}
		list, err := vc.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("vhost/")})
		if err != nil {
			t.Fatalf("virtual-host ListObjectsV2: %v", err)
		}
		if len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != "vhost/obj.bin" {
			t.Errorf("virtual-host ListObjectsV2 = %d objects, want vhost/obj.bin alone", len(list.Contents))
		}
		mu.Lock()
		defer mu.Unlock()
		want := bucket + ".s3.localhost:" + w.port
		if len(hosts) == 0 || slices.ContainsFunc(hosts, func(h string) bool { return h != want }) {
			t.Errorf("requests went to hosts %q, want %s only", hosts, want)
		}
	})

	t.Run("legacy path prefix", func(t *testing.T) {
		// Eucalyptus's Walrus served S3 under /services/Walrus; SigV4 signs
		// the whole path, prefix included.
		lc := newSDKClient(w.endpoint+"/services/Walrus", w.a)
		data := randomBytes(44, 50_000)
		if _, err := lc.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("legacy/obj.bin"), Body: bytes.NewReader(data),
		}); err != nil {
			t.Fatalf("PutObject under /services/Walrus: %v", err)
		}
		if got := getObject(ctx, t, lc, bucket, "legacy/obj.bin"); sha256Hex(got) != sha256Hex(data) {
			t.Errorf("GetObject under /services/Walrus: sha256 %s, want %s", sha256Hex(got), sha256Hex(data))
		}
		if got := getObject(ctx, t, c, bucket, "legacy/obj.bin"); sha256Hex(got) != sha256Hex(data) {
			t.Errorf("GetObject at / of an object put under /services/Walrus: sha256 %s, want %s", sha256Hex(got), sha256Hex(data))
		}
		if _, err := lc.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Errorf("HeadBucket under /services/Walrus: %v", err)
		}
	})

	t.Run("DeleteBucket not empty", func(t *testing.T) {
		_, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)})
		if status, code := apiError(err); status != 409 || code != "BucketNotEmpty" {
			t.Errorf("DeleteBucket of a bucket with objects: %v; want 409 BucketNotEmpty", err)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
