package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/aoe"
	"github.com/koala-cloud/koala/pkg/aoe/aoetest"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sigv4"
)

type keys map[string]string

func (k keys) SecretKey(_ context.Context, id string) (string, error) {
	if s, ok := k[id]; ok {
		return s, nil
	}
	return "", fmt.Errorf("%w: %s", sigv4.ErrUnknownKey, id)
}

var (
	ebsMAC   = net.HardwareAddr{0x02, 0xeb, 0, 0, 0, 1}
	nodeMAC  = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	otherMAC = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}
)

type env struct {
	t      *testing.T
	seg    *aoetest.Segment
	cfg    Config
	srv    *Server
	client *api.Client
	walrus *memWalrus
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, seg: &aoetest.Segment{}, walrus: newMemWalrus()}
	e.cfg = Defaults()
	e.cfg.Listen, e.cfg.DataDir, e.cfg.Interface = "127.0.0.1:0", t.TempDir(), "test0"
	e.cfg.CloudctlURL, e.cfg.ComponentCredentials = "http://127.0.0.1:1", "unused"
	e.start()
	return e
}

func (e *env) start() {
	e.t.Helper()
	srv, err := NewWith(e.cfg, Deps{
		Listen: func(string) (aoe.Conn, error) { return e.seg.NewPort(ebsMAC, 1500), nil },
		Verify: &sigv4.Verifier{Keys: keys{"AKIDCLOUD": "secret"}},
		Walrus: e.walrus,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.srv = srv
	e.client = &api.Client{BaseURL: "http://" + srv.Addr(), AccessKeyID: "AKIDCLOUD", Secret: "secret"}
	e.t.Cleanup(func() { srv.Close() })
}

func (e *env) dial(mac net.HardwareAddr, shelf uint16, slot uint8, wait time.Duration) (*aoe.Initiator, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	in, err := aoe.Dial(ctx, e.seg.NewPort(mac, 1500), shelf, slot)
	if err == nil {
		e.t.Cleanup(func() { in.Close() })
	}
	return in, err
}

func code(err error) string {
	var ce *api.CallError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return ""
}

func TestVolumeLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v, err := e.client.CreateVolume(ctx, "vol-0000000a", api.VolumeRequest{SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	if v.Shelf != 1 || v.Slot != 0 || v.Target != ebsMAC.String() || len(v.Allow) != 0 {
		t.Fatalf("created %+v", v)
	}
	if _, err := e.client.CreateVolume(ctx, "vol-0000000a", api.VolumeRequest{SizeGiB: 2}); code(err) != "IdempotentParameterMismatch" {
		t.Errorf("other size: %v", err)
	}
	// Nobody may use it before an attachment.
	if _, err := e.dial(nodeMAC, v.Shelf, v.Slot, 300*time.Millisecond); err == nil {
		t.Fatal("an unattached volume answered")
	}
	if _, err := e.client.AllowVolume(ctx, v.ID, nodeMAC.String()); err != nil {
		t.Fatal(err)
	}
	in, err := e.dial(nodeMAC, v.Shelf, v.Slot, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if in.Size() != 1<<30 || in.Serial != v.ID {
		t.Errorf("the node sees %d bytes, serial %q", in.Size(), in.Serial)
	}
	pattern := make([]byte, 64<<10)
	rand.Read(pattern)
	if _, err := in.WriteAt(pattern, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := in.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Another node's MAC reads nothing.
	if _, err := e.dial(otherMAC, v.Shelf, v.Slot, 300*time.Millisecond); err == nil {
		t.Fatal("a MAC the volume is not attached to reached it")
	}
	if err := e.client.DeleteVolume(ctx, v.ID); code(err) != "VolumeInUse" {
		t.Fatalf("delete while attached: %v", err)
	}

	// A restart serves the same volume at the same address with the data.
	e.srv.Close()
	e.start()
	in2, err := e.dial(nodeMAC, v.Shelf, v.Slot, 5*time.Second)
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	got := make([]byte, len(pattern))
	if _, err := in2.ReadAt(got, 1<<20); err != nil || !bytes.Equal(got, pattern) {
		t.Fatalf("after restart: %v, equal %v", err, bytes.Equal(got, pattern))
	}

	if _, err := e.client.DisallowVolume(ctx, v.ID, nodeMAC.String()); err != nil {
		t.Fatal(err)
	}
	if err := e.client.DeleteVolume(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetVolume(ctx, v.ID); code(err) != "InvalidVolume.NotFound" {
		t.Errorf("get after delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.DataDir, "volumes", v.ID+".img")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file after delete: %v", err)
	}
	if vs, err := e.client.ListVolumes(ctx); err != nil || len(vs) != 0 {
		t.Errorf("list: %v %v", vs, err)
	}
	bad := &api.Client{BaseURL: e.client.BaseURL, AccessKeyID: "AKIDCLOUD", Secret: "wrong"}
	if _, err := bad.ListVolumes(ctx); err == nil {
		t.Error("a call with a wrong signature was served")
	}
}
