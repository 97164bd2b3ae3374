package aoe_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/aoe"
)

// skipOrFail skips the test, or fails it under CI=true where everything
// it needs must be present.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// vethPair makes a veth pair a<->b in this namespace, up, removed at the
// end of the test.
func vethPair(t *testing.T) (a, b string) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root for veth links and AF_PACKET sockets")
	}
	id := fmt.Sprintf("%05x", mrand.Uint32()&0xfffff)
	a, b = "kav"+id+"a", "kav"+id+"b"
	for _, args := range [][]string{
		{"link", "add", a, "type", "veth", "peer", "name", b},
		{"link", "set", a, "up"},
		{"link", "set", b, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			skipOrFail(t, "ip %v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", a).Run() })
	return a, b
}

// TestInitiatorAgainstVblade reads and writes, with this package's
// initiator, a file that Debian's vblade exports.
func TestInitiatorAgainstVblade(t *testing.T) {
	vblade, err := exec.LookPath("vblade")
	if err != nil {
		skipOrFail(t, "vblade not installed (apt-get install vblade): %v", err)
	}
	ours, theirs := vethPair(t)
	file := filepath.Join(t.TempDir(), "vblade.img")
	pattern := make([]byte, 8<<20)
	rand.Read(pattern)
	if err := os.WriteFile(file, pattern, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(vblade, "5", "3", theirs, file)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	conn, err := aoe.Listen(ours)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in, err := aoe.Dial(ctx, conn, 5, 3)
	if err != nil {
		t.Fatalf("dial vblade's e5.3: %v\nvblade: %s", err, log.String())
	}
	defer in.Close()
	if in.Size() != int64(len(pattern)) {
		t.Fatalf("vblade reports %d bytes, the file has %d", in.Size(), len(pattern))
	}
	got := make([]byte, len(pattern))
	if _, err := in.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(pattern) {
		t.Fatal("read through vblade differs from the file")
	}
	fresh := make([]byte, 3<<20)
	rand.Read(fresh)
	if _, err := in.WriteAt(fresh, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := in.Flush(ctx); err != nil {
		t.Logf("vblade refused FLUSH CACHE (%v); its writes are synchronous", err)
	}
	onDisk, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk[1<<20:4<<20], fresh) || !bytes.Equal(onDisk[:1<<20], pattern[:1<<20]) {
		t.Fatal("vblade's file does not hold what was written around it")
	}
	back := make([]byte, len(fresh))
	if _, err := in.ReadAt(back, 1<<20); err != nil || !bytes.Equal(back, fresh) {
		t.Fatalf("read back: %v", err)
	}
}

// TestTargetOnRawSockets serves a file over a veth pair with RawConn on
// both ends.
func TestTargetOnRawSockets(t *testing.T) {
	a, b := vethPair(t)
	tconn, err := aoe.ListenBlocking(b)
	if err != nil {
		t.Fatal(err)
	}
	defer tconn.Close()
	dev := fileBackend(t, 16<<11)
	tg := aoe.NewTarget(tconn, 4, nil)
	if err := tg.Add(aoe.Export{Shelf: 9, Slot: 1, Sectors: 16 << 11, Dev: dev, Serial: "vol-raw", AllowAll: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tg.Serve(ctx)
	iconn, err := aoe.Listen(a)
	if err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	in, err := aoe.Dial(dctx, iconn, 9, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	data := make([]byte, 4<<20)
	rand.Read(data)
	if _, err := in.WriteAt(data, 512); err != nil {
		t.Fatal(err)
	}
	if err := in.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := dev.ReadAt(got, 512); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file after flush: %v", err)
	}
}
