package bundle

import (
	"context"
	"io"
	"os"
)

// Dir is a directory holding a bundle's files. It is a PartSource, a
// PartSink and a PartRemover. File names are resolved with os.Root, so no
// name can reach outside the directory.
type Dir string

// Part opens the part named filename.
func (d Dir) Part(ctx context.Context, filename string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return os.OpenInRoot(string(d), filename)
}

// Create creates or truncates the part named filename.
func (d Dir) Create(ctx context.Context, filename string) (io.WriteCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(string(d))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.OpenFile(filename, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
}

// Remove removes the part named filename.
func (d Dir) Remove(ctx context.Context, filename string) error {
	root, err := os.OpenRoot(string(d))
	if err != nil {
		return err
	}
	defer root.Close()
	return root.Remove(filename)
}
