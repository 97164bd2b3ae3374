package tools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/koala-cloud/koala/pkg/bundle"
)

// Install is what InstallImage does.
type Install struct {
	// Image is the image file and its bundle settings.
	Image Image
	// Keys bundle it.
	Keys Keys
	// Dest is where the bundle goes.
	Dest Place
	// Registration names the image; its Location is filled in.
	Registration Registration
	// Wait, when positive, is how long to wait for the image to become
	// available; zero returns once it is registered.
	Wait time.Duration
}

// revert undoes the steps of a half-done multi-step operation, last first.
type revert []func()

func (r *revert) add(f func()) { *r = append(*r, f) }

func (r *revert) run() {
	for i := len(*r) - 1; i >= 0; i-- {
		(*r)[i]()
	}
	*r = nil
}

// InstallImage bundles an image straight into the bucket (no temporary
// files: each part is uploaded from memory while the next is made),
// uploads the manifest, registers the image and, if in.Wait is set, waits
// until it is available. It returns the image ID, also when waiting
// fails. If registration fails, it deletes what it uploaded and the bucket
// if it created it.
func (c *Client) InstallImage(ctx context.Context, in Install) (id string, err error) {
	if in.Registration.Name == "" {
		return "", errors.New("no image name: pass -n NAME")
	}
	f, img, size, err := openImage(in.Image)
	if err != nil {
		return "", err
	}
	defer f.Close()
	opts, err := createOptions(img, size, in.Keys)
	if err != nil {
		return "", err
	}
	var undo revert
	defer func() {
		if err != nil {
			if len(undo) > 0 {
				c.logf("Removing what was uploaded")
			}
			undo.run()
		}
	}()
	// Cleaning up must work after ctx is cancelled (Ctrl-C).
	cleanCtx := context.WithoutCancel(ctx)
	created, err := c.ensureBucket(ctx, in.Dest.Bucket)
	if err != nil {
		return "", err
	}
	if created {
		undo.add(func() { _ = c.deleteBucket(cleanCtx, in.Dest.Bucket) })
	}
	name := ManifestName(img.Name)
	key := in.Dest.Key(name)
	// Another image's bundle is not overwritten: its image would fail
	// once the cloud notices its manifest changed.
	if !created {
		there, err := c.exists(ctx, in.Dest.Bucket, key)
		if err != nil {
			return "", err
		}
		if there {
			return "", fmt.Errorf("s3://%s/%s exists already; choose another -b BUCKET/PREFIX or -p NAME, or delete that bundle first (cloudctl delete-bundle)", in.Dest.Bucket, key)
		}
	}

	partSize := opts.PartSize
	if partSize == 0 {
		partSize = bundle.DefaultPartSize
	}
	sink := newS3Sink(c, in.Dest, partSize)
	undo.add(func() { sink.removeAll(cleanCtx) })
	c.logf("Bundling %s (%s) as %s into s3://%s/", img.Path, sizeText(size), img.Name, in.Dest)
	start := time.Now()
	doc, err := bundle.Create(ctx, newProgress(f, size, "bundled and uploaded", c.log), opts, sink)
	if werr := sink.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return "", err
	}
	if err := c.put(ctx, in.Dest.Bucket, key, bytes.NewReader(doc), int64(len(doc))); err != nil {
		return "", err
	}
	undo.add(func() { _ = c.remove(cleanCtx, in.Dest.Bucket, key) })
	c.logf("Uploaded %s: %s in %s, in %s", in.Dest.Location(name), sizeText(sink.bytes), count(len(sink.uploaded), "part"),
		time.Since(start).Round(time.Millisecond))

	reg := in.Registration
	reg.Location = in.Dest.Location(name)
	if id, err = c.Register(ctx, reg); err != nil {
		return "", err
	}
	undo = nil // registered: the bundle is the image's now
	if in.Wait > 0 {
		return id, c.Wait(ctx, id, in.Wait)
	}
	return id, nil
}
