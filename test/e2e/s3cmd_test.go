//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const s3cmdBin = "/usr/bin/s3cmd"

func TestS3cmd(t *testing.T) {
	require(t, fileAt(s3cmdBin), onPath("curl"))
	w := startWalrus(t)

	for _, tc := range []struct {
		name   string
		v2     bool
		bucket string
	}{
		{name: "sigv2", v2: true, bucket: "s3cmd-v2"},
		{name: "sigv4", v2: false, bucket: "s3cmd-v4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "s3cfg")
			// host_bucket without %(bucket)s makes s3cmd address buckets
			// in the path.
			conf := fmt.Sprintf(`[default]
access_key = %s
secret_key = %s
host_base = %s
host_bucket = %s
use_https = False
signature_v2 = %s
bucket_location = us-east-1
check_ssl_certificate = False
progress_meter = False
`, w.a.AccessKeyID, w.a.SecretAccessKey, w.addr, w.addr, pyBool(tc.v2))
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			env := clientEnv(dir)
			s3cmd := func(t *testing.T, args ...string) string {
				t.Helper()
				return run(t, env, s3cmdBin, append([]string{"-c", cfg, "--no-progress"}, args...)...)
			}
			bucket := "s3://" + tc.bucket

			small, big := filepath.Join(dir, "small.txt"), filepath.Join(dir, "big.bin")
			smallSum := writeRandomFile(t, small, 1234, 20)
			bigSum := writeRandomFile(t, big, 20<<20, 21)

			t.Run("mb", func(t *testing.T) {
				s3cmd(t, "mb", bucket)
				if out := s3cmd(t, "ls"); !strings.Contains(out, bucket) {
					t.Errorf("s3cmd ls does not list %s:\n%s", bucket, out)
				}
			})
			t.Run("put", func(t *testing.T) {
				s3cmd(t, "put", small, bucket+"/small.txt")
				s3cmd(t, "put", "--multipart-chunk-size-mb=5", big, bucket+"/dir/big.bin")
				// s3cmd shows the MD5 it keeps in x-amz-meta-s3cmd-attrs
				// instead of a multipart ETag: ask walrus directly.
				head, err := newSDKClient(w.endpoint, w.a).HeadObject(t.Context(), &s3.HeadObjectInput{
					Bucket: aws.String(tc.bucket), Key: aws.String("dir/big.bin")})
				if err != nil {
					t.Fatalf("HeadObject: %v", err)
				}
				data, err := os.ReadFile(big)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := unquote(aws.ToString(head.ETag)), multipartETag(data, 5<<20); got != want {
					t.Errorf("ETag of the 20 MiB put in 5 MiB chunks = %s, want %s", got, want)
				}
			})
			t.Run("ls", func(t *testing.T) {
				out := s3cmd(t, "ls", "--recursive", bucket)
				for _, want := range []string{
					fmt.Sprintf("%d   %s/small.txt", 1234, bucket),
					fmt.Sprintf("%d   %s/dir/big.bin", 20<<20, bucket),
				} {
					if !containsFields(out, want) {
						t.Errorf("s3cmd ls --recursive lacks %q:\n%s", want, out)
					}
				}
				out = s3cmd(t, "ls", bucket)
				if !strings.Contains(out, "DIR") || !strings.Contains(out, bucket+"/dir/") {
					t.Errorf("s3cmd ls %s does not show dir/ as a directory:\n%s", bucket, out)
				}
			})
			t.Run("get", func(t *testing.T) {
				for _, c := range []struct{ key, sum string }{{"small.txt", smallSum}, {"dir/big.bin", bigSum}} {
					out := filepath.Join(dir, "got-"+filepath.Base(c.key))
					s3cmd(t, "get", "--force", bucket+"/"+c.key, out)
					if got := sha256File(t, out); got != c.sum {
						t.Errorf("%s: downloaded sha256 %s, uploaded %s", c.key, got, c.sum)
					}
				}
			})
			t.Run("info", func(t *testing.T) {
				out := s3cmd(t, "info", bucket+"/dir/big.bin")
				if !containsFields(out, fmt.Sprintf("File size: %d", 20<<20)) {
					t.Errorf("s3cmd info lacks the size:\n%s", out)
				}
				data, err := os.ReadFile(small)
				if err != nil {
					t.Fatal(err)
				}
				out = s3cmd(t, "info", bucket+"/small.txt")
				if !containsFields(out, "MD5 sum: "+md5Hex(data)) {
					t.Errorf("s3cmd info of small.txt lacks MD5 sum %s:\n%s", md5Hex(data), out)
				}
			})
			t.Run("signurl", func(t *testing.T) {
				// s3cmd presigns with SigV2 whatever signature_v2 says.
				url := strings.TrimSpace(s3cmd(t, "signurl", bucket+"/dir/big.bin", "+600"))
				code, body := curl(t, dir, url)
				if code != 200 {
					t.Fatalf("GET %s: status %d, want 200; body: %s", url, code, readSmall(body))
				}
				if got := sha256File(t, body); got != bigSum {
					t.Errorf("signurl GET sha256 %s, want %s", got, bigSum)
				}
			})
			t.Run("setacl", func(t *testing.T) {
				url := w.endpoint + "/" + tc.bucket + "/small.txt"
				s3cmd(t, "setacl", "--acl-public", bucket+"/small.txt")
				code, body := curl(t, dir, url)
				if code != 200 {
					t.Fatalf("anonymous GET after setacl --acl-public: status %d, want 200; body: %s", code, readSmall(body))
				}
				if got := sha256File(t, body); got != smallSum {
					t.Errorf("anonymous GET sha256 %s, want %s", got, smallSum)
				}
				s3cmd(t, "setacl", "--acl-private", bucket+"/small.txt")
				if code, _ := curl(t, dir, url); code != 403 {
					t.Errorf("anonymous GET after setacl --acl-private: status %d, want 403", code)
				}
			})
			t.Run("del", func(t *testing.T) {
				s3cmd(t, "del", bucket+"/small.txt", bucket+"/dir/big.bin")
				if out := s3cmd(t, "ls", "--recursive", bucket); strings.TrimSpace(out) != "" {
					t.Errorf("after del, s3cmd ls still lists:\n%s", out)
				}
			})
			t.Run("rb", func(t *testing.T) {
				s3cmd(t, "rb", bucket)
				if out := s3cmd(t, "ls"); strings.Contains(out, bucket) {
					t.Errorf("after rb, s3cmd ls still lists %s:\n%s", bucket, out)
				}
			})
		})
	}
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// containsFields reports whether some line of out holds want's words in
// order, however spaced.
func containsFields(out, want string) bool {
	w := strings.Join(strings.Fields(want), " ")
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(strings.Join(strings.Fields(l), " "), w) {
			return true
		}
	}
	return false
}
