package tools

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/bundle"
)

func TestRunArguments(t *testing.T) {
	dir := t.TempDir()
	image, _ := writeImage(t, dir, "disk.img", 1000)
	env := testEnv(nil, nil, map[string]string{"EUCALYPTUS_CERT": keyPath("cloud-cert.pem")})
	noCreds := testEnv(nil, nil, map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
	tests := []struct {
		name   string
		env    func(string) string
		args   []string
		code   int
		stderr string
	}{
		{"no verb", env, nil, 2, "usage:"},
		{"unknown verb", env, []string{"bundle-everything"}, 2, "usage:"},
		{"help", env, []string{"bundle-image", "-h"}, 0, "usage: cloudctl bundle-image"},
		{"unknown flag", env, []string{"upload-bundle", "-x"}, 2, "flag provided but not defined: -x"},
		{"bundle-image without -i", env, []string{"bundle-image"}, 2, "no image file: pass -i IMAGE"},
		{"bundle-image stray argument", env, []string{"bundle-image", "-i", image, "extra"}, 2, `unexpected argument "extra"`},
		{"bad type", env, []string{"bundle-image", "-i", image, "-type", "floppy"}, 2, `-type "floppy"`},
		{"kernel and ramdisk", env, []string{"bundle-image", "-i", image, "-kernel", "true", "-ramdisk", "true"}, 2, "both a kernel and a ramdisk"},
		{"kernel id of a kernel", env, []string{"bundle-image", "-i", image, "-type", "kernel", "-kernel", "aki-1"}, 2, "for machine images"},
		{"bad kernel id", env, []string{"bundle-image", "-i", image, "-kernel", "ami-1"}, 2, "not a kernel image ID"},
		{"bad part size", env, []string{"bundle-image", "-i", image, "-part-size", "ten"}, 2, "-part-size"},
		{"bad mappings", env, []string{"bundle-image", "-i", image, "-B", "ami"}, 2, "VIRTUAL=DEVICE"},
		{"missing image file", env, []string{"bundle-image", "-i", filepath.Join(dir, "nope.img"), "-d", dir}, 1, "no such file"},
		{"no user key", testEnv(nil, nil, map[string]string{"EC2_PRIVATE_KEY": ""}), []string{"bundle-image", "-i", image}, 2, "-privatekey"},
		{"no account", testEnv(nil, nil, map[string]string{"EC2_ACCOUNT_NUMBER": ""}), []string{"bundle-image", "-i", image}, 2, "EC2_ACCOUNT_NUMBER"},
		{"key of another cert", env, []string{"bundle-image", "-i", image, "-privatekey", keyPath("cloud-pk.pem")}, 1, "does not belong to the user certificate"},
		{"no cloud cert and no cloud", testEnv(nil, nil, nil), []string{"bundle-image", "-i", image, "-d", dir}, 1, "no EC2 URL"},
		{"upload-bundle without -b", env, []string{"upload-bundle", "-m", "x.manifest.xml"}, 2, "no bucket"},
		{"upload-bundle without -m", env, []string{"upload-bundle", "-b", "bucket"}, 2, "no manifest"},
		{"upload-bundle without credentials", noCreds, []string{"upload-bundle", "-b", "b", "-m", "m"}, 1, "no credentials"},
		{"bad s3 style", env, []string{"upload-bundle", "-b", "b", "-m", "m", "-s3-style", "sideways"}, 2, "-s3-style"},
		{"bad ec2 url", testEnv(nil, nil, map[string]string{"EC2_URL": "ftp://x"}), []string{"register", "b/k.manifest.xml", "-n", "n"}, 1, "not an http"},
		{"register without location", env, []string{"register", "-n", "name"}, 2, "want one image location"},
		{"register two locations", env, []string{"register", "a/b", "c/d", "-n", "name"}, 2, "got 2 arguments"},
		{"register without name", env, []string{"register", "b/k.manifest.xml"}, 2, "no image name"},
		{"download-bundle without -m", env, []string{"download-bundle", "-b", "b"}, 2, "no manifest"},
		{"unbundle without key", testEnv(nil, nil, map[string]string{"EC2_PRIVATE_KEY": ""}), []string{"unbundle", "-m", "m"}, 2, "no private key"},
		{"delete-bundle without -b", env, []string{"delete-bundle", "-m", "m"}, 2, "no bucket"},
		{"install-image without -n", env, []string{"install-image", "-i", image, "-b", "b"}, 2, "no image name"},
		{"install-image without -b", env, []string{"install-image", "-i", image, "-n", "x"}, 2, "no bucket"},
		{"install-image bad timeout", env, []string{"install-image", "-i", image, "-b", "b", "-n", "x", "-timeout", "0s"}, 2, "-timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runTool(t, tc.env, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"10485760", 10 << 20}, {"10M", 10 << 20}, {"10MiB", 10 << 20}, {"10mb", 10 << 20}, {"512K", 512 << 10},
		{"1G", 1 << 30}, {"100B", 100}, {"10I", 0}, {"+5", 0}, {"", 0}, {"0", 0}, {"-1M", 0}, {"1.5M", 0}, {"M", 0}, {"010", 0},
	} {
		got, err := ParseSize(tc.in)
		if got != tc.want || (err == nil) != (tc.want > 0) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParsePlace(t *testing.T) {
	for _, tc := range []struct {
		in, bucket, prefix, loc string
		bad                     bool
	}{
		{in: "images", bucket: "images", loc: "images/x.manifest.xml"},
		{in: "images/a/b/", bucket: "images", prefix: "a/b", loc: "images/a/b/x.manifest.xml"},
		{in: "s3://images/a", bucket: "images", prefix: "a", loc: "images/a/x.manifest.xml"},
		{in: "/images", bucket: "images", loc: "images/x.manifest.xml"},
		{in: "", bad: true},
		{in: "images/a//b", bad: true},
	} {
		p, err := ParsePlace(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParsePlace(%q) = %+v, want an error", tc.in, p)
			}
			continue
		}
		if err != nil || p.Bucket != tc.bucket || p.Prefix != tc.prefix || p.Location("x.manifest.xml") != tc.loc {
			t.Errorf("ParsePlace(%q) = %+v, %v; want %s %q (%s)", tc.in, p, err, tc.bucket, tc.prefix, tc.loc)
		}
	}
}

// TestBundleUnbundle bundles an image to a directory and back with the
// user's key, as bundle-image and unbundle do.
func TestBundleUnbundle(t *testing.T) {
	dir := t.TempDir()
	image, data := writeImage(t, dir, "disk.img", 2<<20+777)
	env := testEnv(nil, nil, map[string]string{"EUCALYPTUS_CERT": keyPath("cloud-cert.pem")})
	bdir := filepath.Join(dir, "bundle")
	code, stdout, stderr := runTool(t, env, "bundle-image", "-i", image, "-d", bdir, "-part-size", "512K",
		"-p", "renamed.img", "-r", "i386", "-B", "ami=sda1,root=/dev/sda1")
	if code != 0 {
		t.Fatalf("bundle-image: exit %d: %s", code, stderr)
	}
	manifest := strings.TrimSpace(stdout)
	if manifest != filepath.Join(bdir, "renamed.img.manifest.xml") {
		t.Fatalf("bundle-image printed %q", stdout)
	}
	doc, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	m, err := bundle.ParseManifest(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(mustCert(t, "user-cert.pem")); err != nil {
		t.Errorf("manifest signature: %v", err)
	}
	if m.Arch != "i386" || m.User != "123456789012" || len(m.Parts) != 5 || len(m.BlockDeviceMappings) != 2 {
		t.Errorf("manifest: arch %s user %s %d parts mappings %v", m.Arch, m.User, len(m.Parts), m.BlockDeviceMappings)
	}
	// The cloud can open it with its key.
	key, iv, err := m.Keys(bundle.Decrypter(mustKey(t, "cloud-pk.pem")))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := bundle.Open(t.Context(), m, key, iv, bundle.Dir(bdir))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("cloud's view of the bundle: %d bytes, %v", len(got), err)
	}

	out := filepath.Join(dir, "out")
	code, stdout, stderr = runTool(t, env, "unbundle", "-m", manifest, "-d", out)
	if code != 0 {
		t.Fatalf("unbundle: exit %d: %s", code, stderr)
	}
	if p := strings.TrimSpace(stdout); p != filepath.Join(out, "renamed.img") {
		t.Fatalf("unbundle printed %q", stdout)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "renamed.img")); !bytes.Equal(got, data) {
		t.Errorf("unbundled image differs (%d bytes)", len(got))
	}
	// Not over an existing file.
	if code, _, stderr = runTool(t, env, "unbundle", "-m", manifest, "-d", out); code != 1 || !strings.Contains(stderr, "exists") {
		t.Errorf("unbundle over an existing image: exit %d, %s", code, stderr)
	}
	// Not with someone else's key.
	other := filepath.Join(dir, "other")
	code, _, stderr = runTool(t, env, "unbundle", "-m", manifest, "-d", other, "-privatekey", keyPath("cloud-pk.pem"), "-cert", "")
	if code != 1 || !strings.Contains(stderr, "does not decrypt") {
		t.Errorf("unbundle with the wrong key: exit %d, %s", code, stderr)
	}
	// Not with a corrupted part, and no image file is left behind.
	part := filepath.Join(bdir, m.Parts[2].Filename)
	pdata, _ := os.ReadFile(part)
	pdata[100] ^= 1
	os.WriteFile(part, pdata, 0o644)
	code, _, stderr = runTool(t, env, "unbundle", "-m", manifest, "-d", other)
	if code != 1 || !strings.Contains(stderr, "part digest mismatch") {
		t.Errorf("unbundle of a corrupted part: exit %d, %s", code, stderr)
	}
	if left, _ := os.ReadDir(other); len(left) != 0 {
		t.Errorf("unbundle of a corrupted part left %d files", len(left))
	}
}

// TestUnbundleFixtures unbundles the bundles euca2ools and ec2-ami-tools
// made with the user's key.
func TestUnbundleFixtures(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(fixtureKeys, "..", "disk.img.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"euca2ools", "euca2ools-multipart", "ec2-ami-tools"} {
		t.Run(tool, func(t *testing.T) {
			out := t.TempDir()
			manifest := filepath.Join(fixtureKeys, "..", tool, "disk.img.manifest.xml")
			path, err := Unbundle(t.Context(), manifest, out, mustKey(t, "user-pk.pem"), mustCert(t, "user-cert.pem"), nil)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if got := hex.EncodeToString(sum[:]); !strings.HasPrefix(string(want), got) {
				t.Errorf("%s: sha256 %s, want %s", tool, got, want)
			}
		})
	}
}

// TestInstallImage streams a bundle into the fake S3, registers it and
// waits, taking the cloud certificate from DescribeCloudCertificate.
func TestInstallImage(t *testing.T) {
	dir := t.TempDir()
	image, data := writeImage(t, dir, "disk.img", 3<<20+5)
	s3f := newFakeS3(t)
	ec2f := newFakeEC2(t, readFileString(t, keyPath("cloud-cert.pem")))
	ec2f.states = []string{"pending", "pending", "available"}
	env := testEnv(s3f, ec2f, nil)
	code, stdout, stderr := runTool(t, env, "install-image", "-i", image, "-b", "imgs/v1", "-n", "my image",
		"-description", "a test", "-part-size", "1M", "-timeout", "30s")
	if code != 0 {
		t.Fatalf("install-image: exit %d: %s", code, stderr)
	}
	id := strings.TrimSpace(stdout)
	img := ec2f.image(id)
	if img.id == "" || stdout != id+"\n" {
		t.Fatalf("install-image printed %q; images %v", stdout, ec2f.images)
	}
	if img.location != "imgs/v1/disk.img.manifest.xml" || img.name != "my image" || img.description != "a test" {
		t.Errorf("registered %+v", img)
	}
	if !strings.Contains(stderr, "Using the cloud certificate") || !strings.Contains(stderr, "is available") {
		t.Errorf("stderr:\n%s", stderr)
	}
	objs := s3f.objects("imgs")
	if len(objs) != 5 {
		t.Errorf("%d objects in the bucket, want 4 parts and the manifest", len(objs))
	}
	if last := s3f.puts[len(s3f.puts)-1]; last != "imgs/v1/disk.img.manifest.xml" {
		t.Errorf("last upload %s, want the manifest", last)
	}
	for k, acl := range s3f.acls {
		if acl != "aws-exec-read" {
			t.Errorf("%s: ACL %q, want aws-exec-read", k, acl)
		}
	}
	m, err := bundle.ParseManifest(objs["v1/disk.img.manifest.xml"])
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(mustCert(t, "user-cert.pem")); err != nil {
		t.Error(err)
	}
	key, iv, err := m.Keys(bundle.Decrypter(mustKey(t, "cloud-pk.pem")))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := bundle.Open(t.Context(), m, key, iv, fakeParts{s3f, "imgs", "v1"})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the uploaded bundle holds %d bytes (%v), want the image", len(got), err)
	}
}

func TestInstallImageFailures(t *testing.T) {
	dir := t.TempDir()
	image, _ := writeImage(t, dir, "disk.img", 3<<20)
	tests := []struct {
		name       string
		setup      func(*fakeS3, *fakeEC2)
		args       []string
		stderr     string
		keepBucket bool // the bundle stays (registered)
	}{
		{"image fails", func(_ *fakeS3, e *fakeEC2) {
			e.states = []string{"pending", "failed"}
			e.reason = [2]string{"Client.InvalidManifest", "part digest mismatch: part 2"}
		}, nil, "failed: Client.InvalidManifest: part digest mismatch: part 2", true},
		{"still pending", func(_ *fakeS3, e *fakeEC2) {
			e.states = []string{"pending"}
		}, []string{"-timeout", "1500ms"}, "still pending after 1.5s", true},
		{"registration refused", func(_ *fakeS3, e *fakeEC2) {
			e.register = func(string) string { return "InvalidManifest" }
		}, nil, "InvalidManifest: refused imgs/disk.img.manifest.xml", false},
		{"bundle there already", func(s *fakeS3, _ *fakeEC2) {
			s.buckets["imgs"] = map[string][]byte{"disk.img.manifest.xml": []byte("<manifest/>")}
		}, nil, "s3://imgs/disk.img.manifest.xml exists already", true},
		{"upload refused", func(s *fakeS3, _ *fakeEC2) {
			s.denyPut = func(key string) bool { return strings.HasSuffix(key, ".part.02") }
		}, nil, "AccessDenied", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s3f := newFakeS3(t)
			ec2f := newFakeEC2(t, "")
			tc.setup(s3f, ec2f)
			env := testEnv(s3f, ec2f, map[string]string{"EUCALYPTUS_CERT": keyPath("cloud-cert.pem")})
			args := append([]string{"install-image", "-i", image, "-b", "imgs", "-n", "img", "-part-size", "1M"}, tc.args...)
			code, stdout, stderr := runTool(t, env, args...)
			t.Logf("stderr:\n%s", stderr)
			if code != 1 || stdout != "" || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1, nothing on stdout, %q", code, stdout, stderr, tc.stderr)
			}
			if got := s3f.hasBucket("imgs"); got != tc.keepBucket {
				t.Errorf("bucket left: %v (objects %d), want %v", got, len(s3f.objects("imgs")), tc.keepBucket)
			}
		})
	}
}

// TestUploadDownloadDelete runs the separate verbs against the fake S3,
// with virtual-host addressing.
func TestUploadDownloadDelete(t *testing.T) {
	dir := t.TempDir()
	image, data := writeImage(t, dir, "disk.img", 1<<20+1)
	bdir := filepath.Join(dir, "b")
	manifest, err := BundleImage(t.Context(), Image{Path: image, PartSize: 300 << 10},
		Keys{User: "123456789012", UserCert: mustCert(t, "user-cert.pem"), UserKey: mustKey(t, "user-pk.pem"),
			CloudCert: mustCert(t, "cloud-cert.pem")}, bdir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s3f := newFakeS3(t)
	// Every host name leads to the fake, as a wildcard DNS entry would.
	addr := s3f.srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	c, err := New(Config{S3URL: "http://s3.test:" + port, AccessKeyID: "AKID", SecretAccessKey: "s", VirtualHost: true, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	place := Place{Bucket: "vbucket", Prefix: "p/q"}
	loc, err := c.UploadBundle(ctx, manifest, place)
	if err != nil {
		t.Fatal(err)
	}
	if loc != "vbucket/p/q/disk.img.manifest.xml" {
		t.Errorf("location %q", loc)
	}
	for _, h := range s3f.hosts {
		if !strings.HasPrefix(h, "vbucket.s3.test:") {
			t.Errorf("request to host %q, want vbucket.s3.test", h)
		}
	}
	if n := len(s3f.objects("vbucket")); n != 5 {
		t.Errorf("%d objects uploaded, want 4 parts and the manifest", n)
	}

	// Download checks the part digests.
	dl := filepath.Join(dir, "dl")
	got, err := c.DownloadBundle(ctx, place, "disk.img.manifest.xml", dl)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Unbundle(ctx, got, filepath.Join(dir, "out"), mustKey(t, "user-pk.pem"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(img); !bytes.Equal(b, data) {
		t.Error("downloaded and unbundled image differs")
	}
	s3f.mu.Lock()
	s3f.buckets["vbucket"]["p/q/disk.img.part.01"][0] ^= 0xff
	s3f.mu.Unlock()
	_, err = c.DownloadBundle(ctx, place, "disk.img.manifest.xml", filepath.Join(dir, "dl2"))
	if !errors.Is(err, bundle.ErrPartDigest) {
		t.Errorf("download of a corrupted part: %v, want %v", err, bundle.ErrPartDigest)
	}
	if _, err := os.Stat(filepath.Join(dir, "dl2", "disk.img.part.01")); err == nil {
		t.Error("the corrupted part was kept")
	}
	_, err = c.DownloadBundle(ctx, place, "nope.manifest.xml", filepath.Join(dir, "dl3"))
	if errorCode(err) != "NoSuchKey" {
		t.Errorf("download of a missing manifest: %v", err)
	}

	// Delete with -clear keeps a bucket that holds something else.
	s3f.mu.Lock()
	s3f.buckets["vbucket"]["other"] = []byte("x")
	s3f.mu.Unlock()
	if err := c.DeleteBundle(ctx, place, "disk.img.manifest.xml", true); err != nil {
		t.Fatal(err)
	}
	if objs := s3f.objects("vbucket"); len(objs) != 1 || !s3f.hasBucket("vbucket") {
		t.Errorf("after delete-bundle: %d objects, bucket kept %v; want only the other object", len(objs), s3f.hasBucket("vbucket"))
	}
	// The parts of an interrupted upload (no manifest in the bucket)
	// are found through a local manifest.
	if _, err := c.UploadBundle(ctx, manifest, place); err != nil {
		t.Fatal(err)
	}
	s3f.mu.Lock()
	delete(s3f.buckets["vbucket"], "p/q/disk.img.manifest.xml")
	delete(s3f.buckets["vbucket"], "other")
	s3f.mu.Unlock()
	if err := c.DeleteBundle(ctx, place, manifest, true); err != nil {
		t.Fatal(err)
	}
	if s3f.hasBucket("vbucket") {
		t.Errorf("bucket kept after delete-bundle -clear: %v", s3f.objects("vbucket"))
	}
	if err := c.DeleteBundle(ctx, place, "disk.img.manifest.xml", false); err == nil || !strings.Contains(err.Error(), "no manifest at") {
		t.Errorf("delete of a missing bundle: %v", err)
	}
}

// TestSinkMemory checks that install-image's sink holds a bounded number
// of parts however many there are.
func TestSinkMemory(t *testing.T) {
	s3f := newFakeS3(t)
	s3f.buckets["b"] = map[string][]byte{}
	c, err := New(Config{S3URL: s3f.srv.URL, AccessKeyID: "AKID", SecretAccessKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	sink := newS3Sink(c, Place{Bucket: "b"}, 1<<20)
	if n := cap(sink.free); n < 2 || n > 5 {
		t.Errorf("%d buffers", n)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	chunk := bytes.Repeat([]byte{7}, 1<<20)
	for i := range 40 {
		w, err := sink.Create(ctx, bundle.StyleEuca2ools.PartName("x", i))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(chunk)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := len(s3f.objects("b")); n != 40 {
		t.Errorf("%d parts stored, want 40", n)
	}
	if len(sink.free) != cap(sink.free) {
		t.Errorf("%d of %d buffers returned", len(sink.free), cap(sink.free))
	}
}

func readFileString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
