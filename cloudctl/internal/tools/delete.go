package tools

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/koala-cloud/koala/pkg/bundle"
)

// DeleteBundle deletes the manifest named manifest under src and the
// parts it lists. When the manifest is not in the bucket but manifest
// names a local file, the part names are taken from that file, so that the
// parts of an interrupted upload can be deleted too. With clear, the bucket
// is deleted afterwards if nothing else is left in it.
func (c *Client) DeleteBundle(ctx context.Context, src Place, manifest string, clear bool) error {
	if manifest == "" {
		return errors.New("no manifest named: pass -m NAME.manifest.xml")
	}
	key := src.Key(path.Base(manifest))
	if !localName(manifest) {
		key = src.Key(manifest)
	}
	doc, err := c.get(ctx, src.Bucket, key, bundle.MaxManifestSize)
	inBucket := err == nil
	if err != nil {
		if !isNotFound(err) {
			return err
		}
		local, lerr := os.ReadFile(manifest)
		if lerr != nil {
			if errors.Is(lerr, fs.ErrNotExist) {
				return fmt.Errorf("no manifest at s3://%s/%s", src.Bucket, key)
			}
			return lerr
		}
		c.logf("No manifest at s3://%s/%s; deleting the parts %s lists", src.Bucket, key, manifest)
		doc = local
	}
	m, err := bundle.ParseManifest(doc)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", manifest, err)
	}
	partsAt := Place{Bucket: src.Bucket, Prefix: keyDir(key)}
	// The manifest first: a manifest without all its parts would be a
	// broken bundle, parts without a manifest are only left-overs.
	if inBucket {
		if err := c.remove(ctx, src.Bucket, key); err != nil {
			return err
		}
	}
	if err := eachLimit(ctx, m.Parts, func(ctx context.Context, p bundle.Part) error {
		return c.remove(ctx, src.Bucket, partsAt.Key(p.Filename))
	}); err != nil {
		return err
	}
	c.logf("Deleted %s and its %s from s3://%s/", path.Base(key), count(len(m.Parts), "part"), partsAt)
	if !clear {
		return nil
	}
	left, err := c.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(src.Bucket), MaxKeys: aws.Int32(1)})
	if err != nil {
		return wrap("list bucket "+src.Bucket, err)
	}
	if len(left.Contents) > 0 {
		c.logf("Bucket %s is not empty (it holds %s, at least); not deleting it", src.Bucket, aws.ToString(left.Contents[0].Key))
		return nil
	}
	if err := c.deleteBucket(ctx, src.Bucket); err != nil {
		return err
	}
	c.logf("Deleted bucket %s", src.Bucket)
	return nil
}

// localName reports whether a -m value looks like a path to a local file
// rather than a key under the prefix: it exists on disk.
func localName(manifest string) bool {
	fi, err := os.Stat(manifest)
	return err == nil && fi.Mode().IsRegular()
}
