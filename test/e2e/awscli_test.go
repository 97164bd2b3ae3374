//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// awsBin is Debian's aws CLI 2.9; an aws earlier on PATH (pyenv's) is
// another program.
const awsBin = "/usr/bin/aws"

// awsCLI runs the aws CLI against a walrus as one account, isolated from
// the user's configuration.
type awsCLI struct {
	t        *testing.T
	endpoint string
	env      []string
}

// newAWSCLI returns the aws CLI pointed at endpoint (walrus or cloudctl),
// signing as a, with a HOME and configuration of its own.
func newAWSCLI(t *testing.T, endpoint string, a account) *awsCLI {
	t.Helper()
	home := t.TempDir()
	cfg := filepath.Join(home, "aws-config")
	creds := filepath.Join(home, "aws-credentials")
	for _, p := range []string{cfg, creds} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &awsCLI{t: t, endpoint: endpoint, env: clientEnv(home,
		"AWS_ACCESS_KEY_ID="+a.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+a.SecretAccessKey,
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE="+cfg,
		"AWS_SHARED_CREDENTIALS_FILE="+creds,
		"AWS_PAGER=",
		"AWS_EC2_METADATA_DISABLED=true",
	)}
}

func (c *awsCLI) args(args []string) []string {
	return append(args, "--endpoint-url", c.endpoint, "--output", "json", "--no-cli-pager")
}

// run runs `aws args...`, failing the test if it fails.
func (c *awsCLI) run(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, c.env, awsBin, c.args(args)...)
}

// try runs `aws args...` and returns its error instead of failing.
func (c *awsCLI) try(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return tryRun(t, c.env, awsBin, c.args(args)...)
}

// json runs `aws args...` and decodes its JSON output into v.
func (c *awsCLI) json(t *testing.T, v any, args ...string) {
	t.Helper()
	out := c.run(t, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("aws %s: decode output %q: %v", strings.Join(args, " "), out, err)
	}
}

var multipartETagRE = regexp.MustCompile(`^"?[0-9a-f]{32}-([0-9]+)"?$`)

// partsOf returns N of an ETag "...-N", or 0 for a single-part ETag.
func partsOf(etag string) int {
	m := multipartETagRE.FindStringSubmatch(etag)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

type headObjectOut struct {
	ContentLength int64
	ContentType   string
	ETag          string
	Metadata      map[string]string
}

type aclOut struct {
	Owner  struct{ ID, DisplayName string }
	Grants []struct {
		Grantee    struct{ ID, Type, URI string }
		Permission string
	}
}

func TestAWSCLI(t *testing.T) {
	require(t, fileAt(awsBin), onPath("curl"))
	w := startWalrus(t)
	cli := newAWSCLI(t, w.endpoint, w.a)
	dir := t.TempDir()
	const bucket = "cli-bucket"

	t.Run("mb", func(t *testing.T) {
		out := cli.run(t, "s3", "mb", "s3://"+bucket)
		if !strings.Contains(out, "make_bucket: "+bucket) {
			t.Errorf("aws s3 mb printed %q, want make_bucket: %s", out, bucket)
		}
	})

	t.Run("cp multipart", func(t *testing.T) {
		const size = 40 << 20
		src := filepath.Join(dir, "big.bin")
		want := writeRandomFile(t, src, size, 1)
		cli.run(t, "s3", "cp", src, "s3://"+bucket+"/big.bin")

		var head headObjectOut
		cli.json(t, &head, "s3api", "head-object", "--bucket", bucket, "--key", "big.bin")
		if head.ContentLength != size {
			t.Errorf("head-object ContentLength = %d, want %d", head.ContentLength, size)
		}
		// The CLI uploads 40 MiB in 8 MiB parts.
		if n := partsOf(head.ETag); n < 2 {
			t.Errorf("head-object ETag = %s, want a multipart ETag ending in -N", head.ETag)
		}

		dst := filepath.Join(dir, "big.out")
		cli.run(t, "s3", "cp", "s3://"+bucket+"/big.bin", dst)
		if got := sha256File(t, dst); got != want {
			t.Errorf("downloaded sha256 %s, uploaded %s", got, want)
		}
	})

	t.Run("sync", func(t *testing.T) {
		src := filepath.Join(dir, "tree")
		files := map[string]int{
			"a.txt":                               100,
			"empty":                               0,
			"dir1/b.bin":                          300 << 10,
			"dir1/plus+sign=eq.txt":               777,
			"dir1/dir2/c.txt":                     1 << 10,
			"dir with space/file with spaces.txt": 2 << 10,
		}
		seed := uint64(100)
		for name, size := range files {
			seed++
			writeRandomFile(t, filepath.Join(src, name), size, seed)
		}
		// sync compares modification times with LastModified, which S3
		// gives in whole seconds: date the files an hour back so that a
		// second sync finds them older than their copies.
		old := time.Now().Add(-time.Hour)
		for name := range files {
			if err := os.Chtimes(filepath.Join(src, name), old, old); err != nil {
				t.Fatal(err)
			}
		}

		out := cli.run(t, "s3", "sync", src, "s3://"+bucket+"/tree/")
		if n := strings.Count(out, "upload: "); n != len(files) {
			t.Errorf("first sync uploaded %d files, want %d; output:\n%s", n, len(files), out)
		}

		down := filepath.Join(dir, "tree-down")
		cli.run(t, "s3", "sync", "s3://"+bucket+"/tree/", down)
		compareTrees(t, src, down)

		out = cli.run(t, "s3", "sync", src, "s3://"+bucket+"/tree/")
		if strings.Contains(out, "upload: ") {
			t.Errorf("second sync of an unchanged tree uploaded again:\n%s", out)
		}
	})

	t.Run("ls", func(t *testing.T) {
		out := cli.run(t, "s3", "ls")
		if !strings.Contains(out, bucket) {
			t.Errorf("aws s3 ls does not list %s:\n%s", bucket, out)
		}
		out = cli.run(t, "s3", "ls", "s3://"+bucket+"/")
		for _, want := range []string{"PRE tree/", "big.bin"} {
			if !strings.Contains(out, want) {
				t.Errorf("aws s3 ls s3://%s/ lacks %q:\n%s", bucket, want, out)
			}
		}
		out = cli.run(t, "s3", "ls", "--recursive", "s3://"+bucket+"/tree/")
		if !strings.Contains(out, "tree/dir with space/file with spaces.txt") {
			t.Errorf("aws s3 ls --recursive lacks the file with spaces:\n%s", out)
		}
	})

	t.Run("s3api put-object metadata", func(t *testing.T) {
		src := filepath.Join(dir, "meta.txt")
		writeRandomFile(t, src, 4096, 2)
		var put struct{ ETag string }
		cli.json(t, &put, "s3api", "put-object", "--bucket", bucket, "--key", "meta.txt", "--body", src,
			"--metadata", "color=blue,shape=round", "--content-type", "text/x-e2e")
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if unquote(put.ETag) != md5Hex(data) {
			t.Errorf("put-object ETag = %s, want the MD5 %s", put.ETag, md5Hex(data))
		}
		var head headObjectOut
		cli.json(t, &head, "s3api", "head-object", "--bucket", bucket, "--key", "meta.txt")
		if head.ContentType != "text/x-e2e" {
			t.Errorf("head-object ContentType = %q, want text/x-e2e", head.ContentType)
		}
		if head.Metadata["color"] != "blue" || head.Metadata["shape"] != "round" || len(head.Metadata) != 2 {
			t.Errorf("head-object Metadata = %v, want color=blue, shape=round", head.Metadata)
		}
		if head.ContentLength != 4096 || head.ETag != put.ETag {
			t.Errorf("head-object ContentLength, ETag = %d, %s; want 4096, %s", head.ContentLength, head.ETag, put.ETag)
		}
	})

	t.Run("s3api list-objects-v2 prefix delimiter", func(t *testing.T) {
		src := filepath.Join(dir, "small.txt")
		writeRandomFile(t, src, 10, 3)
		for _, k := range []string{"list/a", "list/b/c", "list/b/d", "list/e/f/g", "listx", "list/z"} {
			cli.run(t, "s3api", "put-object", "--bucket", bucket, "--key", k, "--body", src)
		}
		var out struct {
			Contents       []struct{ Key string }
			CommonPrefixes []struct{ Prefix string }
		}
		cli.json(t, &out, "s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "list/", "--delimiter", "/")
		var keys, prefixes []string
		for _, c := range out.Contents {
			keys = append(keys, c.Key)
		}
		for _, p := range out.CommonPrefixes {
			prefixes = append(prefixes, p.Prefix)
		}
		if want := []string{"list/a", "list/z"}; !slices.Equal(keys, want) {
			t.Errorf("Contents keys = %q, want %q", keys, want)
		}
		if want := []string{"list/b/", "list/e/"}; !slices.Equal(prefixes, want) {
			t.Errorf("CommonPrefixes = %q, want %q", prefixes, want)
		}
	})

	t.Run("s3api acl", func(t *testing.T) {
		src := filepath.Join(dir, "acl.bin")
		want := writeRandomFile(t, src, 10_000, 4)
		cli.run(t, "s3api", "put-object", "--bucket", bucket, "--key", "acl.bin", "--body", src)

		var acl aclOut
		cli.json(t, &acl, "s3api", "get-object-acl", "--bucket", bucket, "--key", "acl.bin")
		if acl.Owner.ID != w.a.CanonicalUserID {
			t.Errorf("get-object-acl Owner.ID = %q, want %q", acl.Owner.ID, w.a.CanonicalUserID)
		}
		if len(acl.Grants) != 1 || acl.Grants[0].Grantee.ID != w.a.CanonicalUserID || acl.Grants[0].Permission != "FULL_CONTROL" {
			t.Errorf("get-object-acl Grants = %+v, want the owner's FULL_CONTROL alone", acl.Grants)
		}

		url := w.endpoint + "/" + bucket + "/acl.bin"
		if code, _ := curl(t, dir, url); code != 403 {
			t.Errorf("anonymous GET of a private object: status %d, want 403", code)
		}

		cli.run(t, "s3api", "put-object-acl", "--bucket", bucket, "--key", "acl.bin", "--acl", "public-read")
		cli.json(t, &acl, "s3api", "get-object-acl", "--bucket", bucket, "--key", "acl.bin")
		if !hasGrant(acl, "http://acs.amazonaws.com/groups/global/AllUsers", "READ") {
			t.Errorf("after --acl public-read, Grants = %+v, want AllUsers READ", acl.Grants)
		}
		code, body := curl(t, dir, url)
		if code != 200 {
			t.Errorf("anonymous GET of a public-read object: status %d, want 200", code)
		} else if got := sha256File(t, body); got != want {
			t.Errorf("anonymous GET sha256 %s, want %s", got, want)
		}

		cli.run(t, "s3api", "put-object-acl", "--bucket", bucket, "--key", "acl.bin", "--acl", "private")
		if code, _ := curl(t, dir, url); code != 403 {
			t.Errorf("anonymous GET after --acl private: status %d, want 403", code)
		}
	})

	t.Run("s3api delete-objects", func(t *testing.T) {
		src := filepath.Join(dir, "small.txt")
		writeRandomFile(t, src, 10, 5)
		for _, k := range []string{"del/1", "del/2", "del/3"} {
			cli.run(t, "s3api", "put-object", "--bucket", bucket, "--key", k, "--body", src)
		}
		var out struct {
			Deleted []struct{ Key string }
			Errors  []struct{ Key, Code, Message string }
		}
		cli.json(t, &out, "s3api", "delete-objects", "--bucket", bucket, "--delete",
			`{"Objects":[{"Key":"del/1"},{"Key":"del/2"},{"Key":"del/3"},{"Key":"del/never-was"}]}`)
		var deleted []string
		for _, d := range out.Deleted {
			deleted = append(deleted, d.Key)
		}
		slices.Sort(deleted)
		// S3 reports a key that did not exist as deleted too.
		if want := []string{"del/1", "del/2", "del/3", "del/never-was"}; !slices.Equal(deleted, want) || len(out.Errors) > 0 {
			t.Errorf("delete-objects Deleted = %q, Errors = %+v; want %q and no errors", deleted, out.Errors, want)
		}
		var list struct{ KeyCount int }
		cli.json(t, &list, "s3api", "list-objects-v2", "--no-paginate", "--bucket", bucket, "--prefix", "del/")
		if list.KeyCount != 0 {
			t.Errorf("after delete-objects, %d keys remain under del/", list.KeyCount)
		}
	})

	t.Run("s3api multipart by hand", func(t *testing.T) {
		const key = "mp/hand.bin"
		p1, p2 := filepath.Join(dir, "part1"), filepath.Join(dir, "part2")
		writeRandomFile(t, p1, 5<<20, 6)
		writeRandomFile(t, p2, 3<<20+17, 7)
		var whole []byte
		for _, p := range []string{p1, p2} {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			whole = append(whole, b...)
		}

		var created struct{ UploadId string }
		cli.json(t, &created, "s3api", "create-multipart-upload", "--bucket", bucket, "--key", key)
		if created.UploadId == "" {
			t.Fatal("create-multipart-upload returned no UploadId")
		}
		type part struct {
			ETag       string
			PartNumber int
		}
		var parts []part
		for i, p := range []string{p1, p2} {
			var up struct{ ETag string }
			cli.json(t, &up, "s3api", "upload-part", "--bucket", bucket, "--key", key,
				"--upload-id", created.UploadId, "--part-number", strconv.Itoa(i+1), "--body", p)
			parts = append(parts, part{ETag: up.ETag, PartNumber: i + 1})
		}

		var listed struct {
			Parts []struct {
				PartNumber int
				ETag       string
				Size       int64
			}
		}
		cli.json(t, &listed, "s3api", "list-parts", "--bucket", bucket, "--key", key, "--upload-id", created.UploadId)
		if len(listed.Parts) != 2 || listed.Parts[0].PartNumber != 1 || listed.Parts[0].Size != 5<<20 ||
			listed.Parts[1].PartNumber != 2 || listed.Parts[1].Size != 3<<20+17 ||
			listed.Parts[0].ETag != parts[0].ETag || listed.Parts[1].ETag != parts[1].ETag {
			t.Errorf("list-parts = %+v, want parts 1 (5 MiB, %s) and 2 (3 MiB+17, %s)", listed.Parts, parts[0].ETag, parts[1].ETag)
		}

		doc, err := json.Marshal(map[string]any{"Parts": parts})
		if err != nil {
			t.Fatal(err)
		}
		partsFile := filepath.Join(dir, "parts.json")
		if err := os.WriteFile(partsFile, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		var done struct{ ETag, Key string }
		cli.json(t, &done, "s3api", "complete-multipart-upload", "--bucket", bucket, "--key", key,
			"--upload-id", created.UploadId, "--multipart-upload", "file://"+partsFile)
		if want := multipartETag(whole, 5<<20); unquote(done.ETag) != want {
			t.Errorf("complete-multipart-upload ETag = %s, want %q", done.ETag, want)
		}

		out := filepath.Join(dir, "hand.out")
		var got struct{ ContentLength int64 }
		cli.json(t, &got, "s3api", "get-object", "--bucket", bucket, "--key", key, out)
		if got.ContentLength != int64(len(whole)) {
			t.Errorf("get-object ContentLength = %d, want %d", got.ContentLength, len(whole))
		}
		if sha256File(t, out) != sha256Hex(whole) {
			t.Errorf("the completed object's sha256 differs from its parts'")
		}
	})

	t.Run("s3api abort-multipart-upload", func(t *testing.T) {
		const key = "mp/aborted.bin"
		p := filepath.Join(dir, "abort-part")
		writeRandomFile(t, p, 1<<20, 8)
		var created struct{ UploadId string }
		cli.json(t, &created, "s3api", "create-multipart-upload", "--bucket", bucket, "--key", key)
		cli.run(t, "s3api", "upload-part", "--bucket", bucket, "--key", key,
			"--upload-id", created.UploadId, "--part-number", "1", "--body", p)

		type uploads struct {
			Uploads []struct{ Key, UploadId string }
		}
		has := func(u uploads) bool {
			return slices.ContainsFunc(u.Uploads, func(x struct{ Key, UploadId string }) bool {
				return x.UploadId == created.UploadId && x.Key == key
			})
		}
		var before, after uploads
		cli.json(t, &before, "s3api", "list-multipart-uploads", "--no-paginate", "--bucket", bucket)
		if !has(before) {
			t.Errorf("list-multipart-uploads = %+v, lacks upload %s", before, created.UploadId)
		}
		cli.run(t, "s3api", "abort-multipart-upload", "--bucket", bucket, "--key", key, "--upload-id", created.UploadId)
		cli.json(t, &after, "s3api", "list-multipart-uploads", "--no-paginate", "--bucket", bucket)
		if has(after) {
			t.Errorf("after abort, list-multipart-uploads still lists upload %s", created.UploadId)
		}
		_, err := cli.try(t, "s3api", "list-parts", "--bucket", bucket, "--key", key, "--upload-id", created.UploadId)
		if err == nil || !strings.Contains(err.Error(), "NoSuchUpload") {
			t.Errorf("list-parts of an aborted upload: %v, want NoSuchUpload", err)
		}
		if _, err := cli.try(t, "s3api", "head-object", "--bucket", bucket, "--key", key); err == nil {
			t.Errorf("head-object of an aborted upload's key succeeded")
		}
	})

	t.Run("s3 presign", func(t *testing.T) {
		src := filepath.Join(dir, "presign.bin")
		want := writeRandomFile(t, src, 1<<20+3, 9)
		cli.run(t, "s3", "cp", src, "s3://"+bucket+"/pre signed/obj.bin")
		url := strings.TrimSpace(cli.run(t, "s3", "presign", "s3://"+bucket+"/pre signed/obj.bin", "--expires-in", "600"))
		if !strings.Contains(url, "X-Amz-Signature=") {
			t.Fatalf("aws s3 presign printed %q, want a SigV4 presigned URL", url)
		}
		code, body := curl(t, dir, url)
		if code != 200 {
			t.Fatalf("GET presigned URL %s: status %d, want 200; body: %s", url, code, readSmall(body))
		}
		if got := sha256File(t, body); got != want {
			t.Errorf("presigned GET sha256 %s, want %s", got, want)
		}
	})

	t.Run("s3 rm recursive", func(t *testing.T) {
		out := cli.run(t, "s3", "rm", "--recursive", "s3://"+bucket+"/tree/")
		if n := strings.Count(out, "delete: "); n != 6 {
			t.Errorf("aws s3 rm --recursive deleted %d objects, want 6:\n%s", n, out)
		}
		var list struct{ KeyCount int }
		cli.json(t, &list, "s3api", "list-objects-v2", "--no-paginate", "--bucket", bucket, "--prefix", "tree/")
		if list.KeyCount != 0 {
			t.Errorf("after rm --recursive, %d keys remain under tree/", list.KeyCount)
		}
		var all struct{ KeyCount int }
		cli.json(t, &all, "s3api", "list-objects-v2", "--no-paginate", "--bucket", bucket)
		if all.KeyCount == 0 {
			t.Errorf("rm --recursive of tree/ removed the bucket's other objects too")
		}
	})
}

func hasGrant(acl aclOut, uri, perm string) bool {
	for _, g := range acl.Grants {
		if g.Grantee.URI == uri && g.Permission == perm {
			return true
		}
	}
	return false
}

// compareTrees checks that dst holds exactly src's files with the same
// contents.
func compareTrees(t *testing.T, src, dst string) {
	t.Helper()
	sums := func(root string) map[string]string {
		m := map[string]string{}
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			m[filepath.ToSlash(rel)] = sha256File(t, path)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	want, got := sums(src), sums(dst)
	for name, sum := range want {
		switch g, ok := got[name]; {
		case !ok:
			t.Errorf("%s: missing from %s", name, dst)
		case g != sum:
			t.Errorf("%s: sha256 %s, want %s", name, g, sum)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: in %s but not in %s", name, dst, src)
		}
	}
}

// readSmall returns the start of a file, for error messages.
func readSmall(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) > 2000 {
		b = b[:2000]
	}
	return string(b)
}
