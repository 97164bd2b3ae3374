// Command imagebench measures how fast walrus's image path decrypts and
// caches a bundle, and how much memory it needs, next to openssl
// decrypting the same parts in the same run.
//
//	go run ./bench/imagebench [-size 1024] [-dir DIR] [-out docs/benchmarks.md]
//
// It bundles a generated image of -size MiB with pkg/bundle (the format of
// euca2ools), then times three things on the same parts: `openssl enc -d
// -aes-128-cbc` alone; openssl piped into gunzip and tar, which is all the
// work walrus does; and walrus's fill path, pkg/bundle.Open (part SHA-1s,
// AES-128-CBC, gunzip, untar, the image digest) into a cache file with its
// SHA-256 and an fsync, as walrus/internal/imagecache fills it. The peak
// Go heap during the fill is reported; the bound is 64 MiB.
package main

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/koala-cloud/koala/pkg/bundle"
)

func main() {
	size := flag.Int64("size", 1024, "image size in MiB")
	dir := flag.String("dir", "var/imagebench", "work directory (on the disk walrus uses)")
	out := flag.String("out", "", "append the results to this markdown file")
	keys := flag.String("keys", "testdata/bundles/keys", "directory with user-cert.pem, user-pk.pem, cloud-cert.pem, cloud-pk.pem")
	flag.Parse()
	if err := run(*size<<20, *dir, *keys, *out); err != nil {
		fmt.Fprintln(os.Stderr, "imagebench:", err)
		os.Exit(1)
	}
}

// image is a deterministic pseudo-random image that compresses like real
// data does (poorly), generated as it is read.
type image struct {
	rng  *rand.ChaCha8
	left int64
}

func (im *image) Read(p []byte) (int, error) {
	if im.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > im.left {
		p = p[:im.left]
	}
	n, _ := im.rng.Read(p)
	im.left -= int64(n)
	return n, nil
}

func readPEM(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s: no PEM", path)
	}
	return b.Bytes, nil
}

func rsaKey(path string) (*rsa.PrivateKey, error) {
	der, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k.(*rsa.PrivateKey), nil
	}
	return x509.ParsePKCS1PrivateKey(der)
}

func cert(path string) (*x509.Certificate, error) {
	der, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func run(size int64, dir, keys, out string) error {
	userCert, err := cert(filepath.Join(keys, "user-cert.pem"))
	if err != nil {
		return err
	}
	userKey, err := rsaKey(filepath.Join(keys, "user-pk.pem"))
	if err != nil {
		return err
	}
	cloudCert, err := cert(filepath.Join(keys, "cloud-cert.pem"))
	if err != nil {
		return err
	}
	cloudKey, err := rsaKey(filepath.Join(keys, "cloud-pk.pem"))
	if err != nil {
		return err
	}
	parts := filepath.Join(dir, "parts")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(parts, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	fmt.Fprintf(os.Stderr, "bundling a %d MiB image...\n", size>>20)
	manifest, err := bundle.Create(ctx, &image{rng: rand.NewChaCha8([32]byte{1}), left: size}, bundle.CreateOptions{
		Name: "bench.img", User: "123456789012", Arch: "x86_64", Size: size,
		UserCert: userCert, UserKey: userKey, CloudCert: cloudCert,
	}, bundle.Dir(parts))
	if err != nil {
		return err
	}
	m, err := bundle.ParseManifest(manifest)
	if err != nil {
		return err
	}
	key, iv, err := m.Keys(bundle.Decrypter(cloudKey))
	if err != nil {
		return err
	}
	var names []string // in the manifest's order, which is the bundle's
	for _, p := range m.Parts {
		names = append(names, filepath.Join(parts, p.Filename))
	}
	mib := float64(size) / (1 << 20)

	// Warm the page cache for every contender alike.
	if err := exec.Command("sh", "-c", "cat "+strings.Join(names, " ")+" > /dev/null").Run(); err != nil {
		return err
	}
	openssl := fmt.Sprintf("cat %s | openssl enc -d -aes-128-cbc -K %s -iv %s", strings.Join(names, " "), hex.EncodeToString(key), hex.EncodeToString(iv))
	t0 := time.Now()
	if out, err := exec.Command("sh", "-c", openssl+" > /dev/null").CombinedOutput(); err != nil {
		return fmt.Errorf("openssl: %v: %s", err, out)
	}
	dOpenssl := time.Since(t0)
	t0 = time.Now()
	if out, err := exec.Command("bash", "-c", "set -o pipefail; "+openssl+" | gunzip | tar -xO > /dev/null").CombinedOutput(); err != nil {
		return fmt.Errorf("openssl pipeline: %v: %s", err, out)
	}
	dPipeline := time.Since(t0)

	// walrus's fill path, with the heap sampled while it runs.
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t0 = time.Now()
	cacheFile := filepath.Join(dir, "cached.img")
	sum, n, err := fill(ctx, m, key, iv, bundle.Dir(parts), cacheFile)
	dWalrus := time.Since(t0)
	close(stop)
	<-sampled
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("filled %d bytes, want %d", n, size)
	}
	rows := [][]string{
		{"openssl enc -d -aes-128-cbc (decrypt only, to /dev/null)", rate(mib, dOpenssl), "—"},
		{"openssl \\| gunzip \\| tar -xO (the same work as walrus, to /dev/null)", rate(mib, dPipeline), "—"},
		{"walrus fill: pkg/bundle.Open → cache file, SHA-256, fsync", rate(mib, dWalrus), fmt.Sprintf("%.1f MiB", float64(peak.Load())/(1<<20))},
	}
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "\n### %s: image bundle decrypt and cache, %d MiB (%s, %d CPUs, %s)\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), size>>20, host, runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&b, "| path | throughput | peak Go heap |\n|---|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r[0], r[1], r[2])
	}
	fmt.Fprintf(&b, "\nParts in the page cache for all three; image sha256 %s. Target: streamed, peak memory under 64 MiB.\n", sum[:16]+"…")
	fmt.Print(b.String())
	if out != "" {
		return insert(out, b.String())
	}
	return nil
}

// insert puts a run's section into the benchmarks file, in the part
// people write (before s3bench's "Latest run", which s3bench rewrites).
func insert(path, section string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(data)
	at := strings.Index(doc, "\n## Latest run")
	if at < 0 {
		at = len(doc)
	}
	return os.WriteFile(path, []byte(doc[:at]+section+doc[at:]), 0o644)
}

func rate(mib float64, d time.Duration) string { return fmt.Sprintf("%.0f MiB/s", mib/d.Seconds()) }

// fill does what walrus/internal/imagecache does with pkg/bundle.Open's
// stream: write it to a file, hash it, fsync.
func fill(ctx context.Context, m *bundle.Manifest, key, iv []byte, src bundle.PartSource, path string) (string, int64, error) {
	img, err := bundle.Open(ctx, m, key, iv, src)
	if err != nil {
		return "", 0, err
	}
	defer img.Close()
	f, err := os.Create(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), img)
	if err != nil {
		return "", n, err
	}
	if err := f.Sync(); err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
