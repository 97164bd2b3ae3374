package tools

import (
	"context"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/koala-cloud/koala/pkg/bundle"
)

// DownloadBundle downloads the manifest named manifest under src, and the
// parts it lists, into dir, which it creates if needed. Each part's SHA-1
// is checked against the manifest as it arrives; a part that does not
// match is not kept. It returns the manifest's path.
func (c *Client) DownloadBundle(ctx context.Context, src Place, manifest, dir string) (string, error) {
	if manifest == "" {
		return "", errors.New("no manifest named: pass -m NAME.manifest.xml")
	}
	key := src.Key(manifest)
	doc, err := c.get(ctx, src.Bucket, key, bundle.MaxManifestSize)
	if err != nil {
		return "", err
	}
	m, err := bundle.ParseManifest(doc)
	if err != nil {
		return "", fmt.Errorf("s3://%s/%s: %w", src.Bucket, key, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", err
	}
	defer root.Close()
	partsAt := Place{Bucket: src.Bucket, Prefix: keyDir(key)}
	c.logf("Downloading %s (%s) from s3://%s/ into %s", count(len(m.Parts), "part"), sizeText(m.BundledSize), partsAt, dir)
	start := time.Now()
	err = eachLimit(ctx, m.Parts, func(ctx context.Context, p bundle.Part) error {
		return c.downloadPart(ctx, root, partsAt, p)
	})
	if err != nil {
		return "", err
	}
	name := path.Base(manifest)
	if err := root.WriteFile(name, doc, 0o644); err != nil {
		return "", err
	}
	c.logf("Downloaded %s in %s", m.Name, time.Since(start).Round(time.Millisecond))
	return filepath.Join(dir, name), nil
}

// downloadPart downloads one part into root, under a temporary name until
// its digest has been checked.
func (c *Client) downloadPart(ctx context.Context, root *os.Root, from Place, p bundle.Part) error {
	key := from.Key(p.Filename)
	out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(from.Bucket), Key: aws.String(key)})
	if err != nil {
		return wrap(fmt.Sprintf("download part %d (s3://%s/%s)", p.Index, from.Bucket, key), err)
	}
	defer out.Body.Close()
	tmp := "." + p.Filename + ".download"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	h := sha1.New()
	_, err = io.Copy(io.MultiWriter(f, h), out.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && hex.EncodeToString(h.Sum(nil)) != p.SHA1 {
		err = fmt.Errorf("%w: part %d (%s): sha1 %x, manifest says %s", bundle.ErrPartDigest, p.Index, key, h.Sum(nil), p.SHA1)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("download part %d: %w", p.Index, err)
	}
	return root.Rename(tmp, p.Filename)
}

// Unbundle decrypts the bundle whose manifest is at manifestPath (the
// parts beside it) with the user's private key, the user's copy of the
// bundle key, and writes the image into dir under the manifest's image
// name. If cert is not nil the manifest's signature must verify with it.
// Every part's digest and the image digest are checked; the image file
// appears only once all of them match. It returns the image's path.
func Unbundle(ctx context.Context, manifestPath, dir string, key *rsa.PrivateKey, cert *x509.Certificate, log io.Writer) (string, error) {
	log = logOrDiscard(log)
	if key == nil {
		return "", errors.New("no private key: pass -privatekey or set EC2_PRIVATE_KEY")
	}
	_, m, err := readManifest(manifestPath)
	if err != nil {
		return "", err
	}
	if cert != nil {
		if err := m.Verify(cert); err != nil {
			return "", fmt.Errorf("%s: %w", manifestPath, err)
		}
	}
	aesKey, iv, err := m.UserKeys(userDecrypter(key))
	if err != nil {
		return "", fmt.Errorf("%s: %w", manifestPath, err)
	}
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, m.Name)
	if _, err := os.Lstat(out); err == nil {
		return "", fmt.Errorf("%s exists; remove it or unbundle into another directory (-d)", out)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	start := time.Now()
	img, err := bundle.Open(ctx, m, aesKey, iv, bundle.Dir(filepath.Dir(manifestPath)))
	if err != nil {
		return "", err
	}
	defer img.Close()
	fmt.Fprintf(log, "Unbundling %s (%s) into %s\n", m.Name, sizeText(m.Size), dir)
	f, err := os.CreateTemp(dir, "."+m.Name+".*.partial")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), newProgress(img, m.Size, "unbundled", log))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), out)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	fmt.Fprintf(log, "Unbundled %s in %s: part and image digests match; sha256 %s\n",
		out, time.Since(start).Round(time.Millisecond), hex.EncodeToString(h.Sum(nil)))
	return out, nil
}
