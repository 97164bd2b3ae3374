package nbd_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/koala-cloud/koala/pkg/nbd"
)

// countingFile counts syncs.
type countingFile struct {
	*os.File
	syncs atomic.Int64
}

func (f *countingFile) Sync() error { f.syncs.Add(1); return f.File.Sync() }

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// TestQemuClient has qemu's own NBD client (qemu-io and qemu-img) write,
// read and flush an export over a unix socket.
func TestQemuClient(t *testing.T) {
	qemuIO, err := exec.LookPath("qemu-io")
	if err != nil {
		skipOrFail(t, "qemu-io not installed (qemu-utils): %v", err)
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "dev"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 16 << 20
	f.Truncate(size)
	dev := &countingFile{File: f}
	srv := nbd.NewServer(nil)
	srv.Add(nbd.Export{Name: "vol-1", Dev: dev, Size: size, BlockSize: 512})
	sock := filepath.Join(dir, "nbd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()

	url := "nbd+unix:///vol-1?socket=" + sock
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(qemuIO, append([]string{"-f", "raw"}, append(args, url)...)...).CombinedOutput()
		if err != nil || strings.Contains(string(out), "fail") || strings.Contains(string(out), "error") {
			t.Fatalf("qemu-io %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("-c", "write -P 0xab 4096 1M", "-c", "write -P 0xcd 3000 100", "-c", "flush", "-c", "write -z 8M 1M")
	if dev.syncs.Load() == 0 {
		t.Error("flush did not reach the device")
	}
	got := make([]byte, 1<<20)
	f.ReadAt(got, 4096)
	if !bytes.Equal(got, bytes.Repeat([]byte{0xab}, 1<<20)) {
		t.Error("the file does not hold qemu's aligned write")
	}
	small := make([]byte, 100)
	f.ReadAt(small, 3000)
	if !bytes.Equal(small, bytes.Repeat([]byte{0xcd}, 100)) {
		t.Error("qemu's unaligned write (read-modify-write over 512-byte blocks) is not in the file")
	}
	out := run("-c", "read -P 0xab 5000 4096", "-c", "read -P 0 8M 1M", "-c", "read -P 0xcd 3000 100")
	if !strings.Contains(out, "read 4096/4096") {
		t.Errorf("qemu-io read:\n%s", out)
	}
	info, err := exec.Command("qemu-img", "info", "--output=json", url).CombinedOutput()
	if err != nil || !strings.Contains(string(info), `"virtual-size": 16777216`) {
		t.Errorf("qemu-img info: %v\n%s", err, info)
	}
	// A wrong export name is refused.
	if out, err := exec.Command(qemuIO, "-f", "raw", "-c", "read 0 512", "nbd+unix:///nope?socket="+sock).CombinedOutput(); err == nil {
		t.Errorf("an unknown export was served:\n%s", out)
	}
}
