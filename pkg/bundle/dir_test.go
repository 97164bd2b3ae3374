package bundle

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestDir(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := Dir(filepath.Join(parent, "bundle"))
	if err := os.Mkdir(string(d), 0o755); err != nil {
		t.Fatal(err)
	}

	w, err := d.Create(ctx, "a.part.00")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := d.Part(ctx, "a.part.00")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "hello" {
		t.Fatalf("read %q", b)
	}
	if _, err := d.Part(ctx, "b.part.00"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing part: %v", err)
	}
	for _, name := range []string{"../secret", filepath.Join(parent, "secret")} {
		if _, err := d.Part(ctx, name); err == nil {
			t.Errorf("Part(%q) escaped the directory", name)
		}
		if _, err := d.Create(ctx, name); err == nil {
			t.Errorf("Create(%q) escaped the directory", name)
		}
	}
	if err := d.Remove(ctx, "a.part.00"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Part(ctx, "a.part.00"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Remove: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.Part(canceled, "a.part.00"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}
