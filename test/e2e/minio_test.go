//go:build e2e

package e2e

import (
	"bytes"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func TestMinioGo(t *testing.T) {
	require(t, onPath("curl"))
	w := startWalrus(t)
	ctx := t.Context()
	dir := t.TempDir()
	// Record how minio-go signs each upload's payload.
	var mu sync.Mutex
	var payloadSigs []string
	transport := http.DefaultTransport.(*http.Transport).Clone()
	mc, err := minio.New(w.addr, &minio.Options{
		Creds:        credentials.NewStaticV4(w.a.AccessKeyID, w.a.SecretAccessKey, ""),
		Secure:       false,
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodPut {
				mu.Lock()
				payloadSigs = append(payloadSigs, r.Header.Get("X-Amz-Content-Sha256"))
				mu.Unlock()
			}
			return transport.RoundTrip(r)
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	const bucket = "minio-bucket"

	get := func(t *testing.T, key string) []byte {
		t.Helper()
		obj, err := mc.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatalf("GetObject %s: %v", key, err)
		}
		defer obj.Close()
		data, err := io.ReadAll(obj)
		if err != nil {
			t.Fatalf("GetObject %s: read: %v", key, err)
		}
		return data
	}

	t.Run("MakeBucket", func(t *testing.T) {
		if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
			t.Fatalf("MakeBucket: %v", err)
		}
		ok, err := mc.BucketExists(ctx, bucket)
		if err != nil || !ok {
			t.Errorf("BucketExists = %v, %v; want true", ok, err)
		}
	})

	streamed := randomBytes(50, 17<<20)
	t.Run("PutObject unknown size", func(t *testing.T) {
		// With size -1 minio-go uploads parts (of PartSize, or else of
		// hundreds of MiB), each signed with chunk signatures.
		mu.Lock()
		payloadSigs = nil
		mu.Unlock()
		r := struct{ io.Reader }{bytes.NewReader(streamed)}
		info, err := mc.PutObject(ctx, bucket, "streamed.bin", r, -1, minio.PutObjectOptions{
			ContentType: "application/x-e2e",
			PartSize:    5 << 20,
		})
		if err != nil {
			t.Fatalf("PutObject -1: %v", err)
		}
		if info.Size != int64(len(streamed)) {
			t.Errorf("PutObject size %d, want %d", info.Size, len(streamed))
		}
		if want := multipartETag(streamed, 5<<20); info.ETag != want {
			t.Errorf("PutObject ETag %s, want %s", info.ETag, want)
		}
		mu.Lock()
		sigs := slices.Clone(payloadSigs)
		mu.Unlock()
		if len(sigs) != 4 || slices.ContainsFunc(sigs, func(s string) bool {
			return !strings.HasPrefix(s, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
		}) {
			t.Errorf("the 4 parts went with X-Amz-Content-Sha256 %q, want STREAMING-AWS4-HMAC-SHA256-PAYLOAD", sigs)
		}
		if got := get(t, "streamed.bin"); sha256Hex(got) != sha256Hex(streamed) {
			t.Errorf("GetObject sha256 %s, want %s", sha256Hex(got), sha256Hex(streamed))
		}
	})

	sized := randomBytes(51, 1<<20+123)
	t.Run("PutObject known size", func(t *testing.T) {
		mu.Lock()
		payloadSigs = nil
		mu.Unlock()
		info, err := mc.PutObject(ctx, bucket, "dir/sized.bin", bytes.NewReader(sized), int64(len(sized)),
			minio.PutObjectOptions{UserMetadata: map[string]string{"color": "purple"}})
		if err != nil {
			t.Fatalf("PutObject: %v", err)
		}
		mu.Lock()
		sigs := slices.Clone(payloadSigs)
		mu.Unlock()
		if len(sigs) != 1 || sigs[0] != "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" {
			t.Errorf("the PUT went with X-Amz-Content-Sha256 %q, want STREAMING-AWS4-HMAC-SHA256-PAYLOAD", sigs)
		}
		if info.ETag != md5Hex(sized) {
			t.Errorf("PutObject ETag %s, want the MD5 %s", info.ETag, md5Hex(sized))
		}
	})

	fileSum := ""
	t.Run("FPutObject", func(t *testing.T) {
		src := filepath.Join(dir, "f.bin")
		fileSum = writeRandomFile(t, src, 3<<20+1, 52)
		if _, err := mc.FPutObject(ctx, bucket, "dir/file.bin", src, minio.PutObjectOptions{ContentType: "text/x-e2e"}); err != nil {
			t.Fatalf("FPutObject: %v", err)
		}
		if got := get(t, "dir/file.bin"); sha256Hex(got) != fileSum {
			t.Errorf("GetObject sha256 %s, want %s", sha256Hex(got), fileSum)
		}
	})

	t.Run("StatObject", func(t *testing.T) {
		st, err := mc.StatObject(ctx, bucket, "dir/sized.bin", minio.StatObjectOptions{})
		if err != nil {
			t.Fatalf("StatObject: %v", err)
		}
		if st.Size != int64(len(sized)) || st.ETag != md5Hex(sized) {
			t.Errorf("StatObject size, ETag = %d, %s; want %d, %s", st.Size, st.ETag, len(sized), md5Hex(sized))
		}
		var color string
		for k, v := range st.UserMetadata {
			if strings.EqualFold(k, "color") {
				color = v
			}
		}
		if color != "purple" {
			t.Errorf("StatObject UserMetadata = %v, want color=purple", st.UserMetadata)
		}
		st, err = mc.StatObject(ctx, bucket, "dir/file.bin", minio.StatObjectOptions{})
		if err != nil {
			t.Fatalf("StatObject: %v", err)
		}
		if st.ContentType != "text/x-e2e" || st.Size != 3<<20+1 {
			t.Errorf("StatObject content type, size = %q, %d; want text/x-e2e, %d", st.ContentType, st.Size, 3<<20+1)
		}
	})

	t.Run("ListObjects", func(t *testing.T) {
		var keys []string
		for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err != nil {
				t.Fatalf("ListObjects: %v", o.Err)
			}
			keys = append(keys, o.Key)
		}
		if want := []string{"dir/file.bin", "dir/sized.bin", "streamed.bin"}; !slices.Equal(keys, want) {
			t.Errorf("ListObjects recursive = %q, want %q", keys, want)
		}
		keys = nil
		for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "dir/"}) {
			if o.Err != nil {
				t.Fatalf("ListObjects: %v", o.Err)
			}
			keys = append(keys, o.Key)
		}
		if want := []string{"dir/file.bin", "dir/sized.bin"}; !slices.Equal(keys, want) {
			t.Errorf("ListObjects prefix dir/ = %q, want %q", keys, want)
		}
	})

	t.Run("CopyObject", func(t *testing.T) {
		if _, err := mc.CopyObject(ctx,
			minio.CopyDestOptions{Bucket: bucket, Object: "copy/sized.bin"},
			minio.CopySrcOptions{Bucket: bucket, Object: "dir/sized.bin"}); err != nil {
			t.Fatalf("CopyObject: %v", err)
		}
		if got := get(t, "copy/sized.bin"); sha256Hex(got) != sha256Hex(sized) {
			t.Errorf("copy's sha256 %s, want %s", sha256Hex(got), sha256Hex(sized))
		}
	})

	t.Run("PresignedGetObject", func(t *testing.T) {
		u, err := mc.PresignedGetObject(ctx, bucket, "streamed.bin", 10*time.Minute, nil)
		if err != nil {
			t.Fatalf("PresignedGetObject: %v", err)
		}
		code, body := curl(t, dir, u.String())
		if code != 200 {
			t.Fatalf("curl %s: status %d, want 200; body: %s", u, code, readSmall(body))
		}
		if got := sha256File(t, body); got != sha256Hex(streamed) {
			t.Errorf("presigned GET sha256 %s, want %s", got, sha256Hex(streamed))
		}
	})

	t.Run("PresignedPutObject", func(t *testing.T) {
		src := filepath.Join(dir, "presigned-put.bin")
		want := writeRandomFile(t, src, 2<<20+9, 53)
		u, err := mc.PresignedPutObject(ctx, bucket, "presigned/put.bin", 10*time.Minute)
		if err != nil {
			t.Fatalf("PresignedPutObject: %v", err)
		}
		code, body := curl(t, dir, u.String(), "-T", src)
		if code != 200 {
			t.Fatalf("curl -T %s: status %d, want 200; body: %s", u, code, readSmall(body))
		}
		if got := get(t, "presigned/put.bin"); sha256Hex(got) != want {
			t.Errorf("GetObject after presigned PUT: sha256 %s, want %s", sha256Hex(got), want)
		}
	})

	t.Run("RemoveObjects", func(t *testing.T) {
		objs := make(chan minio.ObjectInfo)
		go func() {
			defer close(objs)
			for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
				if o.Err == nil {
					objs <- o
				}
			}
		}()
		for e := range mc.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
			t.Errorf("RemoveObjects %s: %v", e.ObjectName, e.Err)
		}
		var left []string
		for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			left = append(left, o.Key)
		}
		if len(left) != 0 {
			t.Errorf("after RemoveObjects, ListObjects = %q", left)
		}
		if err := mc.RemoveBucket(ctx, bucket); err != nil {
			t.Errorf("RemoveBucket: %v", err)
		}
	})
}
