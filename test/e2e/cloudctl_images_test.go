//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sigv4"
)

// imagesCloudctlConfig is cloudctl's configuration with walrus's
// endpoints.
type imagesCloudctlConfig struct {
	Listen         string   `json:"listen"`
	DataDir        string   `json:"data_dir"`
	Region         string   `json:"region"`
	Zones          []string `json:"zones"`
	S3URL          string   `json:"s3_url"`
	WalrusURL      string   `json:"walrus_url"`
	MetadataListen string   `json:"metadata_listen"`
}

// imageStack is cloudctl and walrus running together, the cloud's key
// adopted from the bundle fixtures.
type imageStack struct {
	c           *cloudctl
	w           *walrus
	walrusKeyID string
	walrusKey   string
}

// fixtureDir is testdata/bundles of the module.
func fixtureDir(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "testdata", "bundles")
}

// startImageStack initializes a cloud with the fixtures' cloud
// certificate and key (`cloudctl admin init -cloud-cert -cloud-key`),
// starts cloudctl, then walrus with the component key init wrote.
func startImageStack(t *testing.T) *imageStack {
	t.Helper()
	keys := filepath.Join(fixtureDir(t), "keys")
	walrusPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s3URL := "http://" + net.JoinHostPort("127.0.0.1", walrusPort)
	dir := t.TempDir()
	config := filepath.Join(dir, "cloudctl.json")
	c := &cloudctl{
		daemon:    newDaemon(t, "cloudctl", cloudctlBinary(t), filepath.Join(dir, "cloudctl.log"), "serve", "-config", config),
		dir:       dir,
		dataDir:   filepath.Join(dir, "data"),
		config:    config,
		walrusKey: filepath.Join(dir, "walrus-key.json"),
		s3URL:     s3URL,
	}
	c.startOnFreePort(func(attempt int) error {
		err := writeJSON(c.config, imagesCloudctlConfig{
			MetadataListen: "127.0.0.1:0",
			Listen:         c.addr, DataDir: c.dataDir, Region: "us-east-1", Zones: []string{"us-east-1a"},
			S3URL: s3URL, WalrusURL: s3URL,
		})
		if err != nil || attempt > 0 {
			return err
		}
		out, err := exec.Command(c.bin, "admin", "init", "-config", c.config, "-walrus-key", c.walrusKey,
			"-cloud-cert", filepath.Join(keys, "cloud-cert.pem"), "-cloud-key", filepath.Join(keys, "cloud-pk.pem")).CombinedOutput()
		if err != nil {
			t.Fatalf("cloudctl admin init: %v\n%s", err, out)
		}
		c.admin = decodeAccount(t, "cloudctl admin init", out)
		return nil
	})
	st := &imageStack{c: c, w: startStackWalrus(t, c, walrusPort)}
	var wk struct {
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
	}
	if err := json.Unmarshal([]byte(readSmall(c.walrusKey)), &wk); err != nil || wk.AccessKeyID == "" {
		t.Fatalf("walrus key file %s: %v", c.walrusKey, err)
	}
	st.walrusKeyID, st.walrusKey = wk.AccessKeyID, wk.SecretAccessKey
	return st
}

// nodeImage fetches a registered image's decrypted bytes as a node does:
// GET /internal/v1/images on walrus, signed with walrus's component key.
// It returns the sha256 of the body and its length.
func (st *imageStack) nodeImage(t *testing.T, location string, manifest []byte) (string, int64) {
	t.Helper()
	sum := sha256.Sum256(manifest)
	u := st.w.endpoint + api.PathImages + "?" + url.Values{"location": {location}, "digest": {hex.EncodeToString(sum[:])}}.Encode()
	rq, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sigv4.Sign(rq, st.walrusKeyID, st.walrusKey, "internal", api.InternalService, sigv4.EmptySHA256, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(rq)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("GET %s: %s: %s", u, resp.Status, body)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read the image: %v", u, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// waitImage polls DescribeImages until the image leaves pending, and
// returns the image.
func waitImage(t *testing.T, c *ec2.Client, id string, timeout time.Duration) ec2types.Image {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := c.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if err != nil {
			t.Fatalf("DescribeImages %s: %v", id, err)
		}
		if len(out.Images) != 1 {
			t.Fatalf("DescribeImages %s: %d images", id, len(out.Images))
		}
		img := out.Images[0]
		if img.State != ec2types.ImageStatePending {
			return img
		}
		if time.Now().After(deadline) {
			t.Fatalf("image %s still pending after %s", id, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wantAvailable fails unless img is available.
func wantAvailable(t *testing.T, img ec2types.Image) {
	t.Helper()
	if img.State != ec2types.ImageStateAvailable {
		reason := ""
		if img.StateReason != nil {
			reason = aws.ToString(img.StateReason.Code) + ": " + aws.ToString(img.StateReason.Message)
		}
		t.Fatalf("image %s is %s (%s), want available", aws.ToString(img.ImageId), img.State, reason)
	}
}

// readEucarc returns the variables an eucarc exports.
func readEucarc(t *testing.T, path string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for _, l := range linesOf(readSmall(path)) {
		if k, v, ok := strings.Cut(strings.TrimPrefix(l, "export "), "="); ok {
			vars[k] = v
		}
	}
	for _, k := range []string{"EC2_URL", "S3_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "EC2_CERT",
		"EC2_PRIVATE_KEY", "EUCALYPTUS_CERT", "EC2_ACCOUNT_NUMBER"} {
		if vars[k] == "" {
			t.Fatalf("eucarc %s: no %s", path, k)
		}
	}
	return vars
}

// envOf is clientEnv with the eucarc's variables, but those in drop.
func envOf(home string, vars map[string]string, drop ...string) []string {
	var extra []string
	for k, v := range vars {
		if !slices.Contains(drop, k) {
			extra = append(extra, k+"="+v)
		}
	}
	return clientEnv(home, extra...)
}

// writeRandomImage writes size deterministic pseudo-random bytes to path,
// streaming, and returns their sha256.
func writeRandomImage(t *testing.T, path string, size int64, seed uint64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 0x1a, 0x6e})
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		_, _ = r.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		h.Write(buf[:n])
		left -= n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeCertAndKey writes a new self-signed RSA certificate and its key as
// PEM files in dir, named NAME-cert.pem and NAME-pk.pem.
func writeCertAndKey(t *testing.T, dir, name string) (certPath, keyPath string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, name+"-cert.pem"), filepath.Join(dir, name+"-pk.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// cloudctlTool runs `cloudctl VERB ...` with env and returns its trimmed
// standard output; it fails the test if the command fails. The test log
// gets what it wrote on standard error.
func cloudctlTool(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, _ := cloudctlToolRSS(t, env, args...)
	return out
}

// cloudctlToolRSS is cloudctlTool that also returns the command's peak
// resident memory in bytes: the high-water mark of its own address space
// (VmHWM), sampled while it runs. Not rusage's maxrss: that counts the
// test process's resident pages too, which the child shares until exec.
func cloudctlToolRSS(t *testing.T, env []string, args ...string) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cloudctlBinary(t), args...)
	cmd.Env = env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Start()
	var rss int64
	if err == nil {
		done := make(chan struct{})
		sampled := make(chan int64)
		go func() { sampled <- sampleHWM(cmd.Process.Pid, "cloudctl", done) }()
		err = cmd.Wait()
		close(done)
		rss = <-sampled
	}
	t.Logf("cloudctl %s (%s, peak RSS %d MiB):\n%s", args[0], time.Since(start).Round(time.Millisecond), rss>>20, stderr.String())
	if err != nil {
		t.Fatalf("cloudctl %s: %v\n--- stdout:\n%s", strings.Join(args, " "), err, stdout.String())
	}
	return strings.TrimSpace(stdout.String()), rss
}

// sampleHWM reads the peak resident size (VmHWM, bytes) of process pid
// every 10 ms, once it runs the program named comm, until done; it
// returns the last reading.
func sampleHWM(pid int, comm string, done <-chan struct{}) int64 {
	var last int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(c)) == comm {
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				for _, line := range strings.Split(string(st), "\n") {
					if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						var kib int64
						if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kib); err == nil {
							last = max(last, kib<<10)
						}
					}
				}
			}
		}
		select {
		case <-done:
			return last
		case <-tick.C:
		}
	}
}

// TestCloudctlImages drives the image bundle tools and RegisterImage
// end to end: cloudctl install-image of a 300 MiB image, the separate
// verbs, the bundles euca2ools and ec2-ami-tools made, and the bundles
// RegisterImage must refuse, each checked byte for byte through walrus's
// node-side image call.
func TestCloudctlImages(t *testing.T) {
	t.Parallel()
	require(t, fileAt(awsBin))
	start := time.Now()
	st := startImageStack(t)
	c, w := st.c, st.w
	owner := c.createAccount(t, "imgowner")
	second := c.createAccount(t, "imgsecond")
	creds := filepath.Join(t.TempDir(), "owner-creds")
	c.adminRun(t, []string{"credentials", "imgowner"}, "-dir", creds)
	eucarc := readEucarc(t, filepath.Join(creds, "eucarc"))
	if eucarc["EC2_ACCOUNT_NUMBER"] != owner.AccountID {
		t.Fatalf("eucarc EC2_ACCOUNT_NUMBER=%s, want %s", eucarc["EC2_ACCOUNT_NUMBER"], owner.AccountID)
	}
	fixtures := fixtureDir(t)
	c.adminRun(t, []string{"signing-cert", "upload", "imgowner", filepath.Join(fixtures, "keys", "user-cert.pem")})
	ownerEC2, secondEC2 := newEC2Client(c, owner), newEC2Client(c, second)
	ownerS3 := newSDKClient(w.endpoint, owner)
	t.Logf("stack up in %s", time.Since(start).Round(time.Millisecond))

	t.Run("install-image", func(t *testing.T) {
		t.Parallel()
		const size = 300 << 20
		dir := t.TempDir()
		image := filepath.Join(dir, "big.img")
		want := writeRandomImage(t, image, size, 300)
		began := time.Now()
		id, rss := cloudctlToolRSS(t, envOf(dir, eucarc), "install-image", "-i", image, "-b", "big-images/v1", "-n", "big image",
			"-description", "300 MiB of noise", "-timeout", "90s")
		t.Logf("install-image of 300 MiB: %s", time.Since(began).Round(time.Millisecond))
		// Streamed: a few 10 MiB parts in memory, never the image.
		if rss > 160<<20 {
			t.Errorf("install-image of a 300 MiB image peaked at %d MiB resident, want well under the image size", rss>>20)
		}
		if !strings.HasPrefix(id, "ami-") || strings.Contains(id, "\n") {
			t.Fatalf("install-image printed %q, want an image ID alone", id)
		}
		out, err := ownerEC2.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if err != nil || len(out.Images) != 1 {
			t.Fatalf("DescribeImages %s: %v %+v", id, err, out)
		}
		img := out.Images[0]
		wantAvailable(t, img)
		const location = "big-images/v1/big.img.manifest.xml"
		if got := aws.ToString(img.ImageLocation); got != location {
			t.Errorf("image location %q, want %q", got, location)
		}
		if aws.ToString(img.Name) != "big image" || aws.ToString(img.Description) != "300 MiB of noise" || img.Architecture != "x86_64" {
			t.Errorf("image name %q description %q architecture %q", aws.ToString(img.Name), aws.ToString(img.Description), img.Architecture)
		}
		// The parts and the manifest are readable by the cloud only.
		acl, err := ownerS3.GetObjectAcl(t.Context(), &s3.GetObjectAclInput{Bucket: aws.String("big-images"), Key: aws.String(location[len("big-images/"):])})
		if err != nil {
			t.Fatal(err)
		}
		execRead := false
		for _, g := range acl.Grants {
			if g.Grantee != nil && aws.ToString(g.Grantee.ID) == "6aa5a366c34c1cbe25dc49211496e913e0351eb0e8c37aa3477e40942ec6b97c" && g.Permission == "READ" {
				execRead = true
			}
		}
		if !execRead {
			t.Errorf("manifest ACL has no aws-exec-read grant: %+v", acl.Grants)
		}

		// A second install to the same place does not overwrite the
		// registered bundle.
		out2, err := tryRun(t, envOf(dir, eucarc), cloudctlBinary(t), "install-image", "-i", image, "-b", "big-images/v1", "-n", "again")
		if err == nil || !strings.Contains(err.Error(), "exists already") {
			t.Errorf("install-image over a registered bundle: %q, %v; want a refusal", out2, err)
		}

		manifest := getObject(t.Context(), t, ownerS3, "big-images", "v1/big.img.manifest.xml")
		began = time.Now()
		got, n := st.nodeImage(t, location, manifest)
		t.Logf("node-side fetch of %d bytes: %s", n, time.Since(began).Round(time.Millisecond))
		if got != want || n != size {
			t.Errorf("node-side image: %d bytes, sha256 %s; want %d bytes, %s", n, got, size, want)
		}

		// Another account sees it only once the owner lets it launch it.
		_, err = secondEC2.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{id}})
		wantAPIError(t, "second account: DescribeImages of the owner's image", err, "InvalidAMIID.NotFound")
		newAWSCLI(t, c.endpoint, owner).run(t, "ec2", "modify-image-attribute", "--image-id", id,
			"--launch-permission", fmt.Sprintf("Add=[{UserId=%s}]", second.AccountID))
		out, err = secondEC2.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if err != nil || len(out.Images) != 1 || aws.ToString(out.Images[0].ImageId) != id {
			t.Fatalf("second account after the launch permission: DescribeImages %s: %v %+v", id, err, out)
		}
	})

	t.Run("fixtures", func(t *testing.T) {
		t.Parallel()
		want := strings.Fields(readSmall(filepath.Join(fixtures, "disk.img.sha256")))[0]
		s3cli := newAWSCLI(t, w.endpoint, owner)
		ec2cli := newAWSCLI(t, c.endpoint, owner)
		s3cli.run(t, "s3", "mb", "s3://fixtures")
		for _, tool := range []string{"euca2ools", "euca2ools-multipart", "ec2-ami-tools"} {
			t.Run(tool, func(t *testing.T) {
				began := time.Now()
				s3cli.run(t, "s3", "cp", "--recursive", filepath.Join(fixtures, tool), "s3://fixtures/"+tool+"/")
				location := "fixtures/" + tool + "/disk.img.manifest.xml"
				var reg struct{ ImageId string }
				ec2cli.json(t, &reg, "ec2", "register-image", "--image-location", location, "--name", "fixture "+tool)
				if !strings.HasPrefix(reg.ImageId, "ami-") {
					t.Fatalf("register-image printed image ID %q", reg.ImageId)
				}
				img := waitImage(t, ownerEC2, reg.ImageId, 60*time.Second)
				wantAvailable(t, img)
				manifest, err := os.ReadFile(filepath.Join(fixtures, tool, "disk.img.manifest.xml"))
				if err != nil {
					t.Fatal(err)
				}
				if got, n := st.nodeImage(t, location, manifest); got != want {
					t.Errorf("node-side image of the %s bundle: %d bytes, sha256 %s, want %s", tool, n, got, want)
				}
				t.Logf("%s: uploaded, registered, available and fetched in %s", tool, time.Since(began).Round(time.Millisecond))
			})
		}
	})

	t.Run("verbs", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		image := filepath.Join(dir, "small.img")
		want := writeRandomImage(t, image, 3<<20+12345, 7)
		// No EUCALYPTUS_CERT: the cloud certificate comes from
		// DescribeCloudCertificate.
		env := envOf(dir, eucarc, "EUCALYPTUS_CERT")
		bundleDir := filepath.Join(dir, "bundle")
		manifest := cloudctlTool(t, env, "bundle-image", "-i", image, "-d", bundleDir, "-r", "x86_64", "-part-size", "1M")
		if manifest != filepath.Join(bundleDir, "small.img.manifest.xml") {
			t.Fatalf("bundle-image printed %q", manifest)
		}
		if parts, _ := filepath.Glob(filepath.Join(bundleDir, "small.img.part.*")); len(parts) != 4 {
			t.Errorf("bundle-image wrote %d parts, want 4: %v", len(parts), parts)
		}
		location := cloudctlTool(t, env, "upload-bundle", "-b", "verbs-bucket/some/prefix", "-m", manifest)
		if location != "verbs-bucket/some/prefix/small.img.manifest.xml" {
			t.Fatalf("upload-bundle printed %q", location)
		}
		id := cloudctlTool(t, env, "register", location, "-n", "small image", "-d", "made by the verbs")
		if !strings.HasPrefix(id, "ami-") {
			t.Fatalf("register printed %q", id)
		}
		wantAvailable(t, waitImage(t, ownerEC2, id, 30*time.Second))
		if got, n := st.nodeImage(t, location, readBytes(t, manifest)); got != want {
			t.Errorf("node-side image: %d bytes, sha256 %s, want %s", n, got, want)
		}
		// The cloud's refusal reaches the user with its code.
		out, err := tryRun(t, env, cloudctlBinary(t), "register", location, "-n", "small image")
		if err == nil || !strings.Contains(err.Error(), "InvalidAMIName.Duplicate") {
			t.Errorf("register of a duplicate name: %q, %v; want InvalidAMIName.Duplicate", out, err)
		}

		dl := filepath.Join(dir, "download")
		got := cloudctlTool(t, env, "download-bundle", "-b", "verbs-bucket/some/prefix", "-m", "small.img.manifest.xml", "-d", dl)
		if got != filepath.Join(dl, "small.img.manifest.xml") {
			t.Fatalf("download-bundle printed %q", got)
		}
		unb := filepath.Join(dir, "unbundled")
		imgPath := cloudctlTool(t, env, "unbundle", "-m", got, "-d", unb)
		if imgPath != filepath.Join(unb, "small.img") {
			t.Fatalf("unbundle printed %q", imgPath)
		}
		if sum := sha256File(t, imgPath); sum != want {
			t.Errorf("unbundled image sha256 %s, want %s", sum, want)
		}

		if _, err := ownerEC2.DeregisterImage(t.Context(), &ec2.DeregisterImageInput{ImageId: aws.String(id)}); err != nil {
			t.Fatal(err)
		}
		cloudctlTool(t, env, "delete-bundle", "-b", "verbs-bucket/some/prefix", "-m", "small.img.manifest.xml", "-clear")
		_, err = ownerS3.HeadBucket(t.Context(), &s3.HeadBucketInput{Bucket: aws.String("verbs-bucket")})
		if status, _ := apiError(err); status != http.StatusNotFound {
			t.Errorf("HeadBucket after delete-bundle -clear: %v, want 404", err)
		}
	})

	t.Run("virtual-host", func(t *testing.T) {
		t.Parallel()
		// Buckets as host names: BUCKET.s3.localhost, which walrus serves
		// (its domains), reached through a proxy standing in for DNS.
		var hosts []string
		var mu sync.Mutex
		target, _ := url.Parse(w.endpoint)
		proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			mu.Lock()
			hosts = append(hosts, r.In.Host)
			mu.Unlock()
			r.SetURL(target)
			r.Out.Host = r.In.Host
		}})
		defer proxy.Close()
		dir := t.TempDir()
		image := filepath.Join(dir, "vh.img")
		want := writeRandomImage(t, image, 1<<20, 3)
		env := append(envOf(dir, eucarc), "S3_URL=http://s3.localhost:"+w.port, "HTTP_PROXY="+proxy.URL)
		manifest := cloudctlTool(t, env, "bundle-image", "-i", image, "-d", filepath.Join(dir, "b"), "-part-size", "256K")
		location := cloudctlTool(t, env, "upload-bundle", "-s3-style", "virtual", "-b", "vhost-bucket/x", "-m", manifest)
		dl := cloudctlTool(t, env, "download-bundle", "-s3-style", "virtual", "-b", "vhost-bucket/x", "-m", "vh.img.manifest.xml",
			"-d", filepath.Join(dir, "dl"))
		img := cloudctlTool(t, env, "unbundle", "-m", dl, "-d", filepath.Join(dir, "out"))
		if got := sha256File(t, img); got != want {
			t.Errorf("image through virtual-host addressing: sha256 %s, want %s", got, want)
		}
		cloudctlTool(t, env, "delete-bundle", "-s3-style", "virtual", "-b", "vhost-bucket/x", "-m", "vh.img.manifest.xml", "-clear")
		if location != "vhost-bucket/x/vh.img.manifest.xml" {
			t.Errorf("upload-bundle printed %q", location)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(hosts) < 10 {
			t.Fatalf("%d requests through the proxy", len(hosts))
		}
		for _, h := range hosts {
			if h != "vhost-bucket.s3.localhost:"+w.port {
				t.Errorf("S3 request to host %q, want vhost-bucket.s3.localhost:%s", h, w.port)
				break
			}
		}
		_, err := ownerS3.HeadBucket(t.Context(), &s3.HeadBucketInput{Bucket: aws.String("vhost-bucket")})
		if status, _ := apiError(err); status != http.StatusNotFound {
			t.Errorf("HeadBucket after delete-bundle -clear: %v, want 404", err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		image := filepath.Join(dir, "tiny.img")
		writeRandomImage(t, image, 100<<10, 11)
		env := envOf(dir, eucarc)
		strangerCert, strangerKey := writeCertAndKey(t, dir, "stranger")
		otherCloud, _ := writeCertAndKey(t, dir, "other-cloud")

		upload := func(t *testing.T, prefix string, flags ...string) string {
			t.Helper()
			bdir := filepath.Join(dir, prefix)
			manifest := cloudctlTool(t, env, append([]string{"bundle-image", "-i", image, "-d", bdir}, flags...)...)
			return cloudctlTool(t, env, "upload-bundle", "-b", "refused/"+prefix, "-m", manifest)
		}
		cases := []struct {
			name     string
			location func(t *testing.T) string
		}{
			{"missing manifest", func(t *testing.T) string { return "refused/nothing/here.manifest.xml" }},
			{"unknown signing certificate", func(t *testing.T) string {
				return upload(t, "stranger", "-cert", strangerCert, "-privatekey", strangerKey)
			}},
			{"encrypted for another cloud", func(t *testing.T) string {
				return upload(t, "other-cloud", "-cloud-cert", otherCloud)
			}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				location := tc.location(t)
				began := time.Now()
				_, err := ownerEC2.RegisterImage(t.Context(), &ec2.RegisterImageInput{
					ImageLocation: aws.String(location), Name: aws.String("refused " + tc.name),
				})
				took := time.Since(began)
				wantAPIError(t, "RegisterImage of "+location, err, "InvalidManifest")
				if took > 5*time.Second {
					t.Errorf("RegisterImage took %s to refuse, want at once", took)
				}
				t.Logf("RegisterImage %s: %v (%s)", location, err, took.Round(time.Millisecond))
			})
		}
	})
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
