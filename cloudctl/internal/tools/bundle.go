package tools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/koala-cloud/koala/pkg/bundle"
)

// Image describes the image file to bundle and the manifest's machine
// configuration.
type Image struct {
	// Path is the image file.
	Path string
	// Name is the image's name in the bundle (the tar member, the stem
	// of the part and manifest names); Path's base name if empty.
	Name string
	// Arch is the architecture; x86_64 if empty.
	Arch string
	// Type is machine (the default), kernel or ramdisk.
	Type string
	// KernelID and RamdiskID are a machine image's default kernel and
	// ramdisk.
	KernelID, RamdiskID string
	// Mappings are a machine image's block device mappings.
	Mappings []bundle.Mapping
	// PartSize is the size of the parts; bundle.DefaultPartSize if 0.
	PartSize int64
}

// ManifestName is the file name of the manifest of the image named name.
func ManifestName(name string) string { return name + ".manifest.xml" }

// openImage opens the image file and fills in the defaults of img.
func openImage(img Image) (*os.File, Image, int64, error) {
	if img.Path == "" {
		return nil, img, 0, errors.New("no image file given")
	}
	f, err := os.Open(img.Path)
	if err != nil {
		return nil, img, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, img, 0, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, img, 0, fmt.Errorf("%s is a directory, not an image file", img.Path)
	}
	size := fi.Size()
	if !fi.Mode().IsRegular() {
		// A block device: its size is where a seek to the end lands.
		if size, err = f.Seek(0, io.SeekEnd); err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return nil, img, 0, fmt.Errorf("%s: find its size: %w", img.Path, err)
		}
	}
	if size == 0 {
		f.Close()
		return nil, img, 0, fmt.Errorf("%s is empty", img.Path)
	}
	if img.Name == "" {
		img.Name = filepath.Base(img.Path)
	}
	if img.Arch == "" {
		img.Arch = "x86_64"
	}
	if img.Type == "" {
		img.Type = bundle.TypeMachine
	}
	return f, img, size, nil
}

// createOptions are the bundle.CreateOptions of img made with keys.
func createOptions(img Image, size int64, keys Keys) (bundle.CreateOptions, error) {
	switch {
	case keys.UserCert == nil || keys.UserKey == nil:
		return bundle.CreateOptions{}, errors.New("no user certificate and private key: pass -cert and -privatekey or set EC2_CERT and EC2_PRIVATE_KEY")
	case keys.CloudCert == nil:
		return bundle.CreateOptions{}, errors.New("no cloud certificate: pass -cloud-cert or set EUCALYPTUS_CERT")
	case keys.User == "":
		return bundle.CreateOptions{}, errors.New("no account ID: pass -user or set EC2_ACCOUNT_NUMBER")
	}
	if err := checkPair(keys.UserCert, keys.UserKey); err != nil {
		return bundle.CreateOptions{}, err
	}
	return bundle.CreateOptions{
		Name: img.Name, User: keys.User, Arch: img.Arch, Type: img.Type,
		KernelID: img.KernelID, RamdiskID: img.RamdiskID, Mappings: img.Mappings,
		Size: size, PartSize: img.PartSize,
		UserCert: keys.UserCert, UserKey: keys.UserKey, CloudCert: keys.CloudCert,
	}, nil
}

// BundleImage bundles img into dir, which it creates if needed, and
// returns the manifest's path. On failure it removes the parts it wrote.
func BundleImage(ctx context.Context, img Image, keys Keys, dir string, log io.Writer) (string, error) {
	f, img, size, err := openImage(img)
	if err != nil {
		return "", err
	}
	defer f.Close()
	opts, err := createOptions(img, size, keys)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	manifestPath := filepath.Join(dir, ManifestName(img.Name))
	fmt.Fprintf(logOrDiscard(log), "Bundling %s (%s) as %s into %s\n", img.Path, sizeText(size), img.Name, dir)
	start := time.Now()
	doc, err := bundle.Create(ctx, newProgress(f, size, "bundled", log), opts, bundle.Dir(dir))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(manifestPath, doc, 0o644); err != nil {
		return "", err
	}
	fmt.Fprintf(logOrDiscard(log), "Bundled %s in %s\n", img.Name, time.Since(start).Round(time.Millisecond))
	return manifestPath, nil
}

func logOrDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// sizeText is n bytes for people.
func sizeText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// ParseSize reads a size such as 10485760, 10M, 10MiB or 1G (powers of
// 1024).
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != t || n > (1<<40)/mult {
		return 0, fmt.Errorf("size %q is not a positive number of bytes (such as 10485760 or 10M)", s)
	}
	return n * mult, nil
}

// progress reports reading through a file every tenth of its size.
type progress struct {
	r         io.Reader
	size, n   int64
	next      int64
	what      string
	log       io.Writer
	startTime time.Time
}

func newProgress(r io.Reader, size int64, what string, log io.Writer) io.Reader {
	if log == nil {
		return r
	}
	return &progress{r: r, size: size, next: size / 10, what: what, log: log, startTime: time.Now()}
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.size >= 10<<20 && p.n >= p.next && p.n < p.size {
		fmt.Fprintf(p.log, "  %s %d%% (%s of %s, %s)\n", p.what, p.n*100/p.size, sizeText(p.n), sizeText(p.size),
			time.Since(p.startTime).Round(100*time.Millisecond))
		p.next = (p.n/(p.size/10) + 1) * (p.size / 10)
	}
	return n, err
}

// count is n things, as "1 part" or "3 parts".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
