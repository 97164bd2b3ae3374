package tools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Place is a bucket and a key prefix, written BUCKET[/PREFIX].
type Place struct {
	Bucket, Prefix string
}

// ParsePlace reads BUCKET[/PREFIX], with or without s3:// in front.
func ParsePlace(s string) (Place, error) {
	s = strings.Trim(strings.TrimPrefix(s, "s3://"), "/")
	bucket, prefix, _ := strings.Cut(s, "/")
	prefix = strings.Trim(prefix, "/")
	if bucket == "" {
		return Place{}, fmt.Errorf("%q is not BUCKET or BUCKET/PREFIX", s)
	}
	if strings.Contains(prefix, "//") {
		return Place{}, fmt.Errorf("prefix %q has an empty path segment", prefix)
	}
	return Place{Bucket: bucket, Prefix: prefix}, nil
}

// Key is the key of the object named name under p's prefix.
func (p Place) Key(name string) string {
	if p.Prefix == "" {
		return name
	}
	return p.Prefix + "/" + name
}

// Location is the image location of the manifest named name:
// BUCKET/PREFIX/NAME, what RegisterImage takes.
func (p Place) Location(name string) string { return p.Bucket + "/" + p.Key(name) }

// String is BUCKET[/PREFIX].
func (p Place) String() string {
	if p.Prefix == "" {
		return p.Bucket
	}
	return p.Bucket + "/" + p.Prefix
}

// isNotFound reports whether err is S3's answer for a missing bucket or
// key (a HEAD has no body, so only the status says it).
func isNotFound(err error) bool {
	switch errorCode(err) {
	case "NoSuchKey", "NoSuchBucket", "NotFound":
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// ensureBucket creates bucket unless it exists. created says whether it
// did.
func (c *Client) ensureBucket(ctx context.Context, bucket string) (created bool, err error) {
	_, err = c.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil {
		return false, nil
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
		return false, fmt.Errorf("bucket %s exists and this account may not use it", bucket)
	}
	if !isNotFound(err) {
		return false, wrap("look for bucket "+bucket, err)
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(bucket)}
	if c.cfg.Region != DefaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(c.cfg.Region),
		}
	}
	_, err = c.s3.CreateBucket(ctx, in)
	switch errorCode(err) {
	case "":
		if err != nil {
			return false, wrap("create bucket "+bucket, err)
		}
		c.logf("Created bucket %s", bucket)
		return true, nil
	case "BucketAlreadyOwnedByYou":
		return false, nil
	}
	return false, wrap("create bucket "+bucket, err)
}

// put uploads one object readable by the cloud (aws-exec-read).
func (c *Client) put(ctx context.Context, bucket, key string, body io.ReadSeeker, size int64) error {
	_, err := c.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: body, ContentLength: aws.Int64(size),
		ACL: types.ObjectCannedACLAwsExecRead,
	})
	return wrap(fmt.Sprintf("upload s3://%s/%s", bucket, key), err)
}

// exists reports whether an object exists.
func (c *Client) exists(ctx context.Context, bucket, key string) (bool, error) {
	_, err := c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	switch {
	case err == nil:
		return true, nil
	case isNotFound(err):
		return false, nil
	}
	return false, wrap(fmt.Sprintf("look for s3://%s/%s", bucket, key), err)
}

// remove deletes one object; a missing one is no error.
func (c *Client) remove(ctx context.Context, bucket, key string) error {
	_, err := c.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil && !isNotFound(err) {
		return wrap(fmt.Sprintf("delete s3://%s/%s", bucket, key), err)
	}
	return nil
}

// get reads a whole object of at most limit bytes.
func (c *Client) get(ctx context.Context, bucket, key string, limit int64) ([]byte, error) {
	out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, wrap(fmt.Sprintf("download s3://%s/%s", bucket, key), err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("download s3://%s/%s: %w", bucket, key, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("s3://%s/%s is larger than %d bytes", bucket, key, limit)
	}
	return data, nil
}

// s3Sink is a bundle.PartSink that uploads each part as it is completed.
// A part is kept in one of a fixed set of buffers until its upload ends,
// so memory stays at len(free) parts: one being filled while the others
// upload. Create blocks while every buffer is busy.
type s3Sink struct {
	c        *Client
	place    Place
	partSize int64
	free     chan *bytes.Buffer
	wg       sync.WaitGroup

	mu       sync.Mutex
	err      error    // the first failed upload
	uploaded []string // keys stored
	bytes    int64
}

// maxBufferBytes bounds the memory of an s3Sink's buffers.
const maxBufferBytes = 64 << 20

func newS3Sink(c *Client, place Place, partSize int64) *s3Sink {
	n := int(min(5, max(2, maxBufferBytes/max(partSize, 1))))
	s := &s3Sink{c: c, place: place, partSize: partSize, free: make(chan *bytes.Buffer, n)}
	for range n {
		s.free <- new(bytes.Buffer)
	}
	return s
}

func (s *s3Sink) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Create returns a writer for the part; its Close starts the upload.
func (s *s3Sink) Create(ctx context.Context, filename string) (io.WriteCloser, error) {
	if err := s.failed(); err != nil {
		return nil, err
	}
	select {
	case buf := <-s.free:
		if err := s.failed(); err != nil {
			s.free <- buf
			return nil, err
		}
		buf.Reset()
		buf.Grow(int(s.partSize)) // once per buffer: no doubling as it fills
		return &partUpload{ctx: ctx, s: s, key: s.place.Key(filename), buf: buf}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Remove deletes a part once every upload has ended.
func (s *s3Sink) Remove(ctx context.Context, filename string) error {
	s.wg.Wait()
	return s.c.remove(ctx, s.place.Bucket, s.place.Key(filename))
}

// Wait waits for the uploads and returns the first error.
func (s *s3Sink) Wait() error {
	s.wg.Wait()
	return s.failed()
}

// removeAll deletes every part uploaded.
func (s *s3Sink) removeAll(ctx context.Context) {
	s.wg.Wait()
	s.mu.Lock()
	keys := s.uploaded
	s.uploaded = nil
	s.mu.Unlock()
	for _, k := range keys {
		_ = s.c.remove(ctx, s.place.Bucket, k)
	}
}

func (s *s3Sink) upload(ctx context.Context, key string, buf *bytes.Buffer) {
	defer s.wg.Done()
	defer func() { s.free <- buf }()
	size := int64(buf.Len())
	err := s.c.put(ctx, s.place.Bucket, key, bytes.NewReader(buf.Bytes()), size)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	s.uploaded = append(s.uploaded, key)
	s.bytes += size
}

// partUpload collects one part.
type partUpload struct {
	ctx    context.Context
	s      *s3Sink
	key    string
	buf    *bytes.Buffer
	closed bool
}

func (p *partUpload) Write(b []byte) (int, error) {
	if p.closed {
		return 0, errors.New("write to a closed part")
	}
	return p.buf.Write(b)
}

func (p *partUpload) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	if err := p.s.failed(); err != nil {
		p.s.free <- p.buf
		return err
	}
	p.s.wg.Add(1)
	go p.s.upload(p.ctx, p.key, p.buf)
	return nil
}

// keyDir is the "directory" of key: where a manifest's parts are.
func keyDir(key string) string {
	d := path.Dir(key)
	if d == "." {
		return ""
	}
	return d
}

// deleteBucket deletes an empty bucket.
func (c *Client) deleteBucket(ctx context.Context, bucket string) error {
	_, err := c.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)})
	return wrap("delete bucket "+bucket, err)
}
