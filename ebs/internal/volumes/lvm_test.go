package volumes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/store"
)

// fakeLVM plays lvm(8) for one volume group: its logical volumes are
// files under dev/<vg>/ (this project's hosts have no device-mapper, so
// the real tool cannot run here).
type fakeLVM struct {
	dev, vg string
	zero    string // the pool's zero column
	mu      sync.Mutex
	calls   []string
}

func (f *fakeLVM) run(_ context.Context, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, strings.Join(args, " "))
	dir := filepath.Join(f.dev, f.vg)
	switch {
	case args[0] == "lvs" && slices.Contains(args, "lv_attr,zero"):
		return []byte("  twi-a-tz-- " + f.zero + "\n"), nil
	case args[0] == "lvs":
		entries, _ := os.ReadDir(dir)
		var out string
		for _, e := range entries {
			out += "  " + e.Name() + "\n"
		}
		return []byte(out), nil
	case args[0] == "lvcreate":
		name := args[slices.Index(args, "--name")+1]
		size, err := strconv.ParseInt(strings.TrimSuffix(args[slices.Index(args, "--virtualsize")+1], "b"), 10, 64)
		if err != nil || args[len(args)-1] != f.vg || !slices.Contains(args, "thin") {
			return nil, fmt.Errorf("lvcreate %v", args)
		}
		os.MkdirAll(dir, 0o700)
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return nil, fmt.Errorf("logical volume %s already exists", name)
		}
		file, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		defer file.Close()
		return nil, file.Truncate(size)
	case args[0] == "lvremove":
		vg, name, _ := strings.Cut(args[len(args)-1], "/")
		if vg != f.vg {
			return nil, fmt.Errorf("lvremove %v", args)
		}
		return nil, os.Remove(filepath.Join(dir, name))
	}
	return nil, fmt.Errorf("unexpected lvm %v", args)
}

func TestLVMBackend(t *testing.T) {
	dir := t.TempDir()
	fake := &fakeLVM{dev: filepath.Join(dir, "dev"), vg: "vg0", zero: "zero"}
	back := &LVM{VG: "vg0", Pool: "pool", Dev: fake.dev, Run: fake.run}
	if err := back.Check(); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, "ebs.db"), store.Schema{Version: 1, Buckets: []string{Bucket}}, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := Open(db, back, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Create("vol-0000000a", 2, "", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Path(v.ID); p != filepath.Join(fake.dev, "vg0", "koala-vol-0000000a") {
		t.Errorf("path %s", p)
	}
	if fi, err := os.Stat(s.Path(v.ID)); err != nil || fi.Size() != 2<<30 {
		t.Fatalf("logical volume: %v %v", fi, err)
	}
	// Left by a crash between lvcreate and the record: gone at Open;
	// another tool's volume stays.
	for _, name := range []string{"koala-vol-0000000b", "root"} {
		os.WriteFile(filepath.Join(fake.dev, "vg0", name), nil, 0o600)
	}
	if _, err := Open(db, back, 1, 1); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"koala-vol-0000000a": true, "koala-vol-0000000b": false, "root": true} {
		if _, err := os.Stat(filepath.Join(fake.dev, "vg0", name)); (err == nil) != want {
			t.Errorf("%s present %v, want %v", name, err == nil, want)
		}
	}
	if err := s.Delete(v.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path(v.ID)); !os.IsNotExist(err) {
		t.Errorf("after delete: %v", err)
	}
	// A record whose logical volume is gone stops Open.
	if _, err := s.Create("vol-0000000c", 1, "", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(fake.dev, "vg0", "koala-vol-0000000c"))
	if _, err := Open(db, back, 1, 1); err == nil {
		t.Error("opened with a volume's logical volume missing")
	}

	fake.zero = ""
	if err := back.Check(); err == nil || !strings.Contains(err.Error(), "does not zero") {
		t.Errorf("a pool that does not zero new blocks: %v", err)
	}
}
