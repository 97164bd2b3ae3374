package tools

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/koala-cloud/koala/pkg/bundle"
)

// uploadConcurrency is how many parts are uploaded at once.
const uploadConcurrency = 4

// readManifest reads and parses a manifest file.
func readManifest(manifestPath string) ([]byte, *bundle.Manifest, error) {
	data, err := os.ReadFile(manifestPath)
	if err != nil {
		return nil, nil, err
	}
	m, err := bundle.ParseManifest(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", manifestPath, err)
	}
	return data, m, nil
}

// UploadBundle uploads the bundle whose manifest is at manifestPath (the
// parts beside it) to dest, creating the bucket if it does not exist. The
// parts go first and the manifest last, all with the ACL aws-exec-read,
// so that a manifest in the bucket always has its parts. It returns the
// image location, BUCKET/PREFIX/NAME.manifest.xml.
func (c *Client) UploadBundle(ctx context.Context, manifestPath string, dest Place) (string, error) {
	doc, m, err := readManifest(manifestPath)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(manifestPath)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", err
	}
	defer root.Close()
	var total int64
	for _, p := range m.Parts {
		fi, err := root.Stat(p.Filename)
		if err != nil {
			return "", fmt.Errorf("part %d of %s: %w", p.Index, manifestPath, err)
		}
		total += fi.Size()
	}
	if _, err := c.ensureBucket(ctx, dest.Bucket); err != nil {
		return "", err
	}
	c.logf("Uploading %s (%s) to s3://%s/", count(len(m.Parts), "part"), sizeText(total), dest)
	start := time.Now()
	if err := eachLimit(ctx, m.Parts, func(ctx context.Context, p bundle.Part) error {
		f, err := root.Open(p.Filename)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		return c.put(ctx, dest.Bucket, dest.Key(p.Filename), f, fi.Size())
	}); err != nil {
		return "", err
	}
	name := filepath.Base(manifestPath)
	if err := c.put(ctx, dest.Bucket, dest.Key(name), bytes.NewReader(doc), int64(len(doc))); err != nil {
		return "", err
	}
	c.logf("Uploaded %s in %s", dest.Location(name), time.Since(start).Round(time.Millisecond))
	return dest.Location(name), nil
}

// eachLimit runs fn for every part, uploadConcurrency at a time, and
// returns the first error; after one, the others are cancelled.
func eachLimit(ctx context.Context, parts []bundle.Part, fn func(context.Context, bundle.Part) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, uploadConcurrency)
	for _, p := range parts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx, p); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
