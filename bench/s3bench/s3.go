package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/koala-cloud/koala/pkg/sigv4"
)

// client is a minimal S3 client: path-style URLs, header SigV4 with an
// unsigned payload, one shared transport whose connections are reused.
type client struct {
	endpoint       string // scheme://host[:port], no trailing slash
	access, secret string
	region         string
	hc             *http.Client
	tr             *http.Transport
	pattern        []byte // what PUT bodies repeat
}

func newClient(endpoint, access, secret, region string, conns int) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     64 << 10,
		ReadBufferSize:      64 << 10,
	}
	return &client{
		endpoint: endpoint, access: access, secret: secret, region: region,
		hc: &http.Client{Transport: tr}, tr: tr, pattern: randomBytes(1 << 20),
	}
}

func (c *client) close() { c.tr.CloseIdleConnections() }

// s3Error is a non-2xx answer.
type s3Error struct {
	status  int
	code    string
	message string
}

func (e *s3Error) Error() string {
	if e.code == "" {
		return fmt.Sprintf("http %d", e.status)
	}
	return fmt.Sprintf("http %d %s: %s", e.status, e.code, e.message)
}

// do sends a signed request and returns a 2xx response, whose body the
// caller reads and closes. body, when not nil, is size bytes long.
func (c *client) do(ctx context.Context, method, bucket, key, query string, body func() io.Reader, size int64) (*http.Response, error) {
	u := c.endpoint + "/" + bucket
	if key != "" {
		u += "/" + key // keys are [a-z0-9/-]: nothing to escape
	}
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Body = io.NopCloser(body())
		req.ContentLength = size
		// Lets the transport resend on a keep-alive connection the server
		// closed meanwhile.
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(body()), nil }
	}
	if err := sigv4.Sign(req, c.access, c.secret, c.region, "s3", sigv4.UnsignedPayload, time.Now()); err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	e := &s3Error{status: resp.StatusCode}
	var doc struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	if data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)); xml.Unmarshal(data, &doc) == nil {
		e.code, e.message = doc.Code, doc.Message
	}
	return nil, fmt.Errorf("%s %s: %w", method, strings.TrimPrefix(u, c.endpoint), e)
}

// drain reads what is left of a response and closes it, so that its
// connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func (c *client) createBucket(ctx context.Context, bucket string) error {
	resp, err := c.do(ctx, http.MethodPut, bucket, "", "", nil, 0)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

func (c *client) deleteBucket(ctx context.Context, bucket string) error {
	resp, err := c.do(ctx, http.MethodDelete, bucket, "", "", nil, 0)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// put stores size bytes of c.pattern, repeated, under key.
func (c *client) put(ctx context.Context, bucket, key string, size int64) error {
	body := func() io.Reader { return &payload{src: c.pattern, left: size} }
	resp, err := c.do(ctx, http.MethodPut, bucket, key, "", body, size)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// get reads an object through buf and discards it, returning its size.
func (c *client) get(ctx context.Context, bucket, key string, buf []byte) (int64, error) {
	resp, err := c.do(ctx, http.MethodGet, bucket, key, "", nil, 0)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.CopyBuffer(discard{}, resp.Body, buf)
	if err != nil {
		return n, fmt.Errorf("GET /%s/%s: body: %w", bucket, key, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("GET /%s/%s: %d of %d bytes", bucket, key, n, resp.ContentLength)
	}
	return n, nil
}

func (c *client) head(ctx context.Context, bucket, key string) error {
	resp, err := c.do(ctx, http.MethodHead, bucket, key, "", nil, 0)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

func (c *client) del(ctx context.Context, bucket, key string) error {
	resp, err := c.do(ctx, http.MethodDelete, bucket, key, "", nil, 0)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// list sends a ListObjectsV2 request and discards the answer.
func (c *client) list(ctx context.Context, bucket, startAfter string, maxKeys int) error {
	resp, err := c.do(ctx, http.MethodGet, bucket, "", listQuery(startAfter, maxKeys), nil, 0)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// listCount sends a ListObjectsV2 request and returns how many keys came
// back, to check that the list workload lists what it should.
func (c *client) listCount(ctx context.Context, bucket, startAfter string, maxKeys int) (int, error) {
	resp, err := c.do(ctx, http.MethodGet, bucket, "", listQuery(startAfter, maxKeys), nil, 0)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var doc struct {
		Contents []struct {
			Key string `xml:"Key"`
		} `xml:"Contents"`
	}
	if err := xml.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return 0, fmt.Errorf("list %s: %w", bucket, err)
	}
	return len(doc.Contents), nil
}

func listQuery(startAfter string, maxKeys int) string {
	q := "list-type=2&max-keys=" + strconv.Itoa(maxKeys)
	if startAfter != "" {
		q += "&start-after=" + startAfter // keys are [a-z0-9/-]; '/' may stay
	}
	return q
}

// payload reads left bytes of src, repeated: a body that is generated, not
// held in memory.
type payload struct {
	src  []byte
	off  int
	left int64
}

func (p *payload) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n := copy(b, p.src[p.off:])
	p.off = (p.off + n) % len(p.src)
	p.left -= int64(n)
	return n, nil
}

// discard is io.Discard without ReadFrom, so that io.CopyBuffer reads
// through the caller's large buffer instead of io.Discard's 8 KiB one.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
