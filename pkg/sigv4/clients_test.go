package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsv4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/koala-cloud/koala/internal/capture"
)

const (
	clientKeyID  = "AKIDCLIENTTEST"
	clientSecret = "client/secret+KEY0123456789abcdefghijklm"
)

// wireRequest is a request as a server received it.
type wireRequest struct {
	method, target, host string
	header               http.Header
	contentLength        int64
	transferEncoding     []string
	body                 []byte
}

// build returns a fresh *http.Request equal to what the handler saw,
// optionally with a different body.
func (w wireRequest) build(body []byte) *http.Request {
	if body == nil {
		body = w.body
	}
	u, err := url.ParseRequestURI(w.target)
	if err != nil {
		panic(err)
	}
	return &http.Request{
		Method: w.method, RequestURI: w.target, URL: u, Host: w.host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header.Clone(), ContentLength: w.contentLength, TransferEncoding: w.transferEncoding,
		Body: io.NopCloser(bytes.NewReader(body)),
	}
}

// recorder is an httptest server that records every request and answers
// like a permissive S3.
type recorder struct {
	mu   sync.Mutex
	reqs []wireRequest
	srv  *httptest.Server
}

func newRecorder(t *testing.T, tls bool) *recorder {
	rec := &recorder{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, wireRequest{r.Method, r.RequestURI, r.Host, r.Header.Clone(), r.ContentLength, r.TransferEncoding, body})
		rec.mu.Unlock()
		w.Header().Set("ETag", `"d41d8cd98f00b204e9800998ecf8427e"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.Method == http.MethodGet {
			io.WriteString(w, "object body")
		}
	})
	if tls {
		rec.srv = httptest.NewTLSServer(h)
	} else {
		rec.srv = httptest.NewServer(h)
	}
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) last(t *testing.T) wireRequest {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) == 0 {
		t.Fatal("no request recorded")
	}
	return rec.reqs[len(rec.reqs)-1]
}

func clientVerifier() *Verifier {
	return &Verifier{Keys: staticKeys{clientKeyID: clientSecret}} // clock: now
}

// checkWire verifies a recorded request, checks the decoded body, and
// checks that tampering with the target, a signed header or a signed body
// fails.
func checkWire(t *testing.T, w wireRequest, wantBody []byte, wantPayload string) *Auth {
	t.Helper()
	r := w.build(nil)
	auth, err := clientVerifier().Verify(r)
	if err != nil {
		t.Fatalf("Verify %s %s: %v\nheaders: %v", w.method, w.target, err, w.header)
	}
	got, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	if wantBody != nil && !bytes.Equal(got, wantBody) {
		t.Fatalf("body: got %d bytes, want %d", len(got), len(wantBody))
	}
	if wantPayload != "" && auth.PayloadHash != wantPayload && !(wantPayload == "hex" && isSHA256Hex(auth.PayloadHash)) {
		t.Errorf("payload %q, want %q", auth.PayloadHash, wantPayload)
	}

	// target
	tw := w
	tw.target = "/x" + w.target[1:]
	if _, _, err := verifyAndRead(clientVerifier(), tw.build(nil)); !errors.Is(err, ErrSignature) {
		t.Errorf("changed target: err = %v", err)
	}
	// each signed header (header form) or the host (query form)
	names := []string{"host"}
	if a, err := parseAuthorization(w.header.Get("Authorization")); err == nil {
		names = a.signedHeaders
	}
	for _, name := range names {
		hw := w
		hw.header = w.header.Clone()
		if name == "host" {
			hw.host = w.host + "0"
		} else {
			hw.header.Set(name, capture.Mutate(w.header.Get(name), 0))
		}
		if _, _, err := verifyAndRead(clientVerifier(), hw.build(nil)); err == nil {
			t.Errorf("changed header %s: verified", name)
		}
	}
	// body, when the payload is signed
	if len(w.body) > 0 && auth.PayloadHash != UnsignedPayload && auth.PayloadHash != StreamingUnsignedTrailer && auth.PayloadHash != "" {
		for _, i := range []int{len(w.body) / 3, len(w.body) - 5} {
			b := bytes.Clone(w.body)
			b[i] ^= 0x20
			if _, _, err := verifyAndRead(clientVerifier(), w.build(b)); err == nil {
				t.Errorf("body changed at %d: verified", i)
			}
		}
	}
	return auth
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestAWSSDKSigner checks requests signed by aws-sdk-go-v2's v4 signer,
// header and presigned, sent over the wire.
func TestAWSSDKSigner(t *testing.T) {
	rec := newRecorder(t, false)
	creds := aws.Credentials{AccessKeyID: clientKeyID, SecretAccessKey: clientSecret}
	signer := awsv4.NewSigner()
	ctx := context.Background()

	t.Run("ec2 post", func(t *testing.T) {
		body := []byte("Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3AName")
		r, _ := http.NewRequest("POST", rec.srv.URL+"/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		if err := signer.SignHTTP(ctx, creds, r, sha256Hex(body), "ec2", "local", time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := rec.srv.Client().Do(r); err != nil {
			t.Fatal(err)
		}
		checkWire(t, rec.last(t), body, "")
	})
	t.Run("s3 put with odd key", func(t *testing.T) {
		body := []byte("some object data")
		r, _ := http.NewRequest("PUT", rec.srv.URL+"/bucket/dir/a%20b+c%21.txt?x-id=PutObject", bytes.NewReader(body))
		r.Header.Set("X-Amz-Content-Sha256", sha256Hex(body))
		r.Header.Set("X-Amz-Meta-Color", "  blue  ")
		if err := signer.SignHTTP(ctx, creds, r, sha256Hex(body), "s3", "local", time.Now(), func(o *awsv4.SignerOptions) {
			o.DisableURIPathEscaping = true
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := rec.srv.Client().Do(r); err != nil {
			t.Fatal(err)
		}
		checkWire(t, rec.last(t), body, "hex")
	})
	t.Run("s3 presigned get", func(t *testing.T) {
		r, _ := http.NewRequest("GET", rec.srv.URL+"/bucket/key%2Fwith%2Fslashes?response-content-type=text%2Fplain", nil)
		q := r.URL.Query()
		q.Set("X-Amz-Expires", "900")
		r.URL.RawQuery = q.Encode()
		u, _, err := signer.PresignHTTP(ctx, creds, r, UnsignedPayload, "s3", "local", time.Now(), func(o *awsv4.SignerOptions) {
			o.DisableURIPathEscaping = true
		})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rec.srv.Client().Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		auth := checkWire(t, rec.last(t), nil, "")
		if !auth.Presigned {
			t.Error("not presigned")
		}
	})
	t.Run("ec2 presigned", func(t *testing.T) {
		r, _ := http.NewRequest("GET", rec.srv.URL+"/?Action=DescribeRegions&Version=2016-11-15&X-Amz-Expires=60", nil)
		u, _, err := signer.PresignHTTP(ctx, creds, r, EmptySHA256, "ec2", "local", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rec.srv.Client().Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		checkWire(t, rec.last(t), nil, "")
	})
}

func s3Client(rec *recorder, opts ...func(*s3.Options)) *s3.Client {
	cfg := aws.Config{
		Region:      "local",
		Credentials: awscreds.NewStaticCredentialsProvider(clientKeyID, clientSecret, ""),
		HTTPClient:  rec.srv.Client(),
		// what config.LoadDefaultConfig gives: a CRC32 on every upload
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
	}
	return s3.NewFromConfig(cfg, append([]func(*s3.Options){func(o *s3.Options) {
		o.BaseEndpoint = aws.String(rec.srv.URL)
		o.UsePathStyle = true
		o.RetryMaxAttempts = 1
	}}, opts...)...)
}

// onlyReader hides Seek so that the SDK must stream the body.
type onlyReader struct{ io.Reader }

// TestAWSSDKS3Client checks requests sent by aws-sdk-go-v2's S3 client:
// PutObject with its default CRC32 checksum (in a header over plain HTTP,
// as an aws-chunked trailer over TLS), a streaming body, GetObject and a
// presigned GetObject.
func TestAWSSDKS3Client(t *testing.T) {
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 kB
	for _, tls := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "https"}[tls]
		t.Run(name, func(t *testing.T) {
			rec := newRecorder(t, tls)
			client := s3Client(rec)

			t.Run("put seekable", func(t *testing.T) {
				_, err := client.PutObject(ctx, &s3.PutObjectInput{
					Bucket: aws.String("bucket"), Key: aws.String("dir/obj one.bin"),
					Body: bytes.NewReader(data), Metadata: map[string]string{"color": "blue"},
				})
				if err != nil {
					t.Fatal(err)
				}
				w := rec.last(t)
				t.Logf("headers %v", w.header)
				auth := checkWire(t, w, data, "")
				if auth.PayloadHash == StreamingUnsignedTrailer && auth.Trailer.Get("X-Amz-Checksum-Crc32") == "" {
					t.Errorf("no checksum trailer: %v", auth.Trailer)
				}
			})
			t.Run("put stream", func(t *testing.T) {
				var opts []func(*s3.Options)
				if !tls {
					// Without TLS the SDK cannot send a trailer; an
					// unseekable body then goes unsigned.
					opts = append(opts, s3.WithAPIOptions(awsv4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware),
						func(o *s3.Options) { o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired })
				}
				_, err := client.PutObject(ctx, &s3.PutObjectInput{
					Bucket: aws.String("bucket"), Key: aws.String("stream.bin"),
					Body: onlyReader{bytes.NewReader(data)}, ContentLength: aws.Int64(int64(len(data))),
				}, opts...)
				if err != nil {
					t.Fatal(err)
				}
				w := rec.last(t)
				t.Logf("headers %v", w.header)
				auth := checkWire(t, w, data, "")
				if tls && (auth.PayloadHash != StreamingUnsignedTrailer || auth.Trailer.Get("X-Amz-Checksum-Crc32") == "") {
					t.Errorf("payload %s, trailer %v", auth.PayloadHash, auth.Trailer)
				}
			})
			t.Run("get", func(t *testing.T) {
				out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("a/b+c")})
				if err != nil {
					t.Fatal(err)
				}
				out.Body.Close()
				checkWire(t, rec.last(t), []byte{}, "")
			})
			t.Run("presigned get", func(t *testing.T) {
				ps, err := s3.NewPresignClient(client).PresignGetObject(ctx, &s3.GetObjectInput{
					Bucket: aws.String("bucket"), Key: aws.String("dir/obj one.bin"),
				}, s3.WithPresignExpires(10*time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				resp, err := rec.srv.Client().Get(ps.URL)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if auth := checkWire(t, rec.last(t), nil, ""); !auth.Presigned {
					t.Error("not presigned")
				}
			})
		})
	}
}

// TestMinioClient checks requests sent by minio-go: PutObject over plain
// HTTP (STREAMING-AWS4-HMAC-SHA256-PAYLOAD, signed chunks), with and
// without a checksum trailer, and a PresignedGetObject URL.
func TestMinioClient(t *testing.T) {
	ctx := context.Background()
	rec := newRecorder(t, false)
	u, _ := url.Parse(rec.srv.URL)
	newClient := func(trailers bool) *minio.Client {
		mc, err := minio.New(u.Host, &minio.Options{
			Creds:           miniocreds.NewStaticV4(clientKeyID, clientSecret, ""),
			Region:          "local",
			TrailingHeaders: trailers,
		})
		if err != nil {
			t.Fatal(err)
		}
		return mc
	}
	mc := newClient(false)
	data := bytes.Repeat([]byte("minio-go streaming body. "), 12000) // 300 kB: several 64 KiB chunks

	tests := []struct {
		name     string
		trailers bool
		opts     minio.PutObjectOptions
	}{
		{"put", false, minio.PutObjectOptions{DisableMultipart: true, ContentType: "application/x-test"}},
		{"put with checksum trailer", true, minio.PutObjectOptions{DisableMultipart: true, Checksum: minio.ChecksumCRC32C}},
		{"put small", false, minio.PutObjectOptions{DisableMultipart: true, UserMetadata: map[string]string{"Color": "blue"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := data
			if tc.name == "put small" {
				body = data[:100]
			}
			_, err := newClient(tc.trailers).PutObject(ctx, "bucket", "dir/obj+1.bin", bytes.NewReader(body), int64(len(body)), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			w := rec.last(t)
			t.Logf("headers %v", w.header)
			if !strings.HasPrefix(w.header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
				t.Errorf("minio-go did not stream: %s", w.header.Get("X-Amz-Content-Sha256"))
			}
			auth := checkWire(t, w, body, "")
			if tc.trailers && auth.Trailer.Get("X-Amz-Checksum-Crc32c") == "" {
				t.Errorf("payload %s, trailer %v", auth.PayloadHash, auth.Trailer)
			}
		})
	}
	t.Run("presigned get", func(t *testing.T) {
		pu, err := mc.PresignedGetObject(ctx, "bucket", "dir/obj+1.bin", 5*time.Minute, url.Values{"response-content-type": {"text/plain"}})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rec.srv.Client().Get(pu.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if auth := checkWire(t, rec.last(t), nil, ""); !auth.Presigned {
			t.Error("not presigned")
		}
	})
}
