//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestIsolation(t *testing.T) {
	require(t, onPath("curl"))
	w := startWalrus(t)
	ctx := t.Context()
	alice := newSDKClient(w.endpoint, w.a)
	bob := newSDKClient(w.endpoint, w.b)
	const bucketA, bucketB = "iso-alice", "iso-bob"
	secret, public := randomBytes(60, 5000), randomBytes(61, 7000)

	for _, c := range []struct {
		client *s3.Client
		bucket string
	}{{alice, bucketA}, {bob, bucketB}} {
		if _, err := c.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(c.bucket)}); err != nil {
			t.Fatalf("CreateBucket %s: %v", c.bucket, err)
		}
	}
	for key, data := range map[string][]byte{"secret.txt": secret, "public.txt": public} {
		if _, err := alice.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucketA), Key: aws.String(key), Body: bytes.NewReader(data),
		}); err != nil {
			t.Fatalf("PutObject %s: %v", key, err)
		}
	}
	up, err := alice.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucketA), Key: aws.String("mp")})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", err)
	}

	t.Run("other account denied", func(t *testing.T) {
		a, k, other := aws.String(bucketA), aws.String("secret.txt"), aws.String("bob-was-here")
		for _, tc := range []struct {
			name string
			call func() error
		}{
			{"ListObjectsV2", func() error {
				_, err := bob.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: a})
				return err
			}},
			{"ListObjects", func() error { _, err := bob.ListObjects(ctx, &s3.ListObjectsInput{Bucket: a}); return err }},
			{"GetObject", func() error { _, err := bob.GetObject(ctx, &s3.GetObjectInput{Bucket: a, Key: k}); return err }},
			{"HeadObject", func() error { _, err := bob.HeadObject(ctx, &s3.HeadObjectInput{Bucket: a, Key: k}); return err }},
			{"PutObject new key", func() error {
				_, err := bob.PutObject(ctx, &s3.PutObjectInput{Bucket: a, Key: other, Body: strings.NewReader("x")})
				return err
			}},
			{"PutObject overwrite", func() error {
				_, err := bob.PutObject(ctx, &s3.PutObjectInput{Bucket: a, Key: k, Body: strings.NewReader("x")})
				return err
			}},
			{"DeleteObject", func() error { _, err := bob.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: a, Key: k}); return err }},
			{"DeleteObjects", func() error {
				out, err := bob.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: a, Delete: &types.Delete{
					Objects: []types.ObjectIdentifier{{Key: k}}}})
				if err != nil {
					return err
				}
				// S3 may also answer 200 with a per-key AccessDenied.
				if len(out.Deleted) == 0 && len(out.Errors) == 1 && aws.ToString(out.Errors[0].Code) == "AccessDenied" {
					return errDeniedPerKey
				}
				return fmt.Errorf("deleted %d keys, errors %+v", len(out.Deleted), out.Errors)
			}},
			{"GetObjectAcl", func() error { _, err := bob.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: a, Key: k}); return err }},
			{"GetBucketAcl", func() error { _, err := bob.GetBucketAcl(ctx, &s3.GetBucketAclInput{Bucket: a}); return err }},
			{"PutObjectAcl", func() error {
				_, err := bob.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: a, Key: k, ACL: types.ObjectCannedACLPublicRead})
				return err
			}},
			{"CopyObject out of the bucket", func() error {
				_, err := bob.CopyObject(ctx, &s3.CopyObjectInput{
					Bucket: aws.String(bucketB), Key: aws.String("stolen"), CopySource: aws.String(bucketA + "/secret.txt")})
				return err
			}},
			{"ListMultipartUploads", func() error {
				_, err := bob.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: a})
				return err
			}},
			{"UploadPart", func() error {
				_, err := bob.UploadPart(ctx, &s3.UploadPartInput{Bucket: a, Key: aws.String("mp"), UploadId: up.UploadId,
					PartNumber: aws.Int32(1), Body: strings.NewReader("x")})
				return err
			}},
			{"AbortMultipartUpload", func() error {
				_, err := bob.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: a, Key: aws.String("mp"), UploadId: up.UploadId})
				return err
			}},
			{"DeleteBucket", func() error { _, err := bob.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: a}); return err }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.call()
				if errors.Is(err, errDeniedPerKey) {
					return
				}
				status, code := apiError(err)
				if status != 403 || (code != "AccessDenied" && tc.name != "HeadObject") {
					t.Errorf("bob's %s on alice's bucket: %v (status %d, code %q); want 403 AccessDenied", tc.name, err, status, code)
				}
			})
		}

		// Nothing bob tried left a trace.
		if got := getObject(ctx, t, alice, bucketA, "secret.txt"); !bytes.Equal(got, secret) {
			t.Errorf("alice's secret.txt changed: sha256 %s, want %s", sha256Hex(got), sha256Hex(secret))
		}
		if keys := listKeys(t, alice, bucketA); !slices.Equal(keys, []string{"public.txt", "secret.txt"}) {
			t.Errorf("alice's bucket holds %q, want public.txt and secret.txt", keys)
		}
		if keys := listKeys(t, bob, bucketB); len(keys) != 0 {
			t.Errorf("bob's bucket holds %q, want nothing", keys)
		}
		if _, err := alice.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(bucketA), Key: aws.String("mp"), UploadId: up.UploadId}); err != nil {
			t.Errorf("alice's upload after bob's abort: ListParts: %v", err)
		}
	})

	t.Run("ListBuckets", func(t *testing.T) {
		for _, c := range []struct {
			who    string
			client *s3.Client
			want   string
		}{{"alice", alice, bucketA}, {"bob", bob, bucketB}} {
			out, err := c.client.ListBuckets(ctx, &s3.ListBucketsInput{})
			if err != nil {
				t.Fatalf("%s's ListBuckets: %v", c.who, err)
			}
			var names []string
			for _, b := range out.Buckets {
				names = append(names, aws.ToString(b.Name))
			}
			if !slices.Equal(names, []string{c.want}) {
				t.Errorf("%s's ListBuckets = %q, want %q alone", c.who, names, c.want)
			}
		}
	})

	t.Run("anonymous denied", func(t *testing.T) {
		for _, tc := range []struct{ method, path string }{
			{"GET", "/" + bucketA + "/secret.txt"},
			{"HEAD", "/" + bucketA + "/secret.txt"},
			{"GET", "/" + bucketA},
			{"GET", "/" + bucketA + "?list-type=2"},
			{"GET", "/" + bucketA + "/secret.txt?acl"},
			{"PUT", "/" + bucketA + "/anonymous.txt"},
			{"DELETE", "/" + bucketA + "/secret.txt"},
			{"DELETE", "/" + bucketA},
		} {
			req, err := http.NewRequestWithContext(ctx, tc.method, w.endpoint+tc.path, strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.method != "PUT" {
				req.Body, req.ContentLength = nil, 0
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 403 || (tc.method != "HEAD" && !bytes.Contains(body, []byte("<Code>AccessDenied</Code>"))) {
				t.Errorf("anonymous %s %s: %s\n%s\nwant 403 AccessDenied", tc.method, tc.path, resp.Status, body)
			}
		}
		_, err := anonymousSDKClient(w.endpoint).ListBuckets(ctx, &s3.ListBucketsInput{})
		if status, _ := apiError(err); status != 403 {
			t.Errorf("anonymous ListBuckets: %v, want 403", err)
		}
		if got := getObject(ctx, t, alice, bucketA, "secret.txt"); !bytes.Equal(got, secret) {
			t.Errorf("alice's secret.txt changed after anonymous requests")
		}
	})

	t.Run("public-read object", func(t *testing.T) {
		if _, err := alice.PutObjectAcl(ctx, &s3.PutObjectAclInput{
			Bucket: aws.String(bucketA), Key: aws.String("public.txt"), ACL: types.ObjectCannedACLPublicRead,
		}); err != nil {
			t.Fatalf("PutObjectAcl public-read: %v", err)
		}
		dir := t.TempDir()
		code, body := curl(t, dir, w.endpoint+"/"+bucketA+"/public.txt")
		if code != 200 {
			t.Fatalf("anonymous curl of a public-read object: status %d, want 200; body: %s", code, readSmall(body))
		}
		if got := sha256File(t, body); got != sha256Hex(public) {
			t.Errorf("anonymous curl sha256 %s, want %s", got, sha256Hex(public))
		}
		if got := getObject(ctx, t, bob, bucketA, "public.txt"); !bytes.Equal(got, public) {
			t.Errorf("bob's GetObject of a public-read object: sha256 %s, want %s", sha256Hex(got), sha256Hex(public))
		}
		if code, _ := curl(t, dir, w.endpoint+"/"+bucketA+"/secret.txt"); code != 403 {
			t.Errorf("anonymous curl of the private object next to a public one: status %d, want 403", code)
		}
		// Public read does not open the bucket listing.
		if code, _ := curl(t, dir, w.endpoint+"/"+bucketA+"?list-type=2"); code != 403 {
			t.Errorf("anonymous listing of a bucket with a public object: status %d, want 403", code)
		}
	})
}

// errDeniedPerKey stands for a DeleteObjects answer that denies every key.
var errDeniedPerKey = errors.New("denied per key")

// listKeys lists every key in bucket.
func listKeys(t *testing.T, c *s3.Client, bucket string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("ListObjectsV2 %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}
