package aoe_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/aoe"
	"github.com/koala-cloud/koala/pkg/aoe/aoetest"
)

var (
	targetMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	nodeMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	otherMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x03}
)

func TestFrameRoundTrip(t *testing.T) {
	h := aoe.Header{Dst: targetMAC, Src: nodeMAC, Version: aoe.Version, Flags: aoe.FlagResponse, Error: 2,
		Shelf: 0x1234, Slot: 7, Command: aoe.CmdATA, Tag: 0xdeadbeef}
	for _, a := range []aoe.ATA{
		{Flags: aoe.ATAFlagExtended | aoe.ATAFlagWrite, SectorCount: 2, CmdStatus: aoe.ATAWrite48, LBA: 0x0000_1234_5678_9abc & (1<<48 - 1), Data: bytes.Repeat([]byte{7}, 1024)},
		{SectorCount: 1, CmdStatus: aoe.ATARead28, LBA: 0x0abcdef},
	} {
		b := aoe.AppendATA(aoe.AppendHeader(nil, h), a)
		f, err := aoe.ParseFrame(b)
		if err != nil {
			t.Fatal(err)
		}
		if f.Tag != h.Tag || f.Shelf != h.Shelf || f.Slot != h.Slot || f.Flags != h.Flags || f.Error != h.Error ||
			f.Version != aoe.Version || !bytes.Equal(f.Src, nodeMAC) || !bytes.Equal(f.Dst, targetMAC) {
			t.Errorf("header %+v, want %+v", f.Header, h)
		}
		got, err := aoe.ParseATA(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if got.LBA != a.LBA || got.SectorCount != a.SectorCount || got.CmdStatus != a.CmdStatus || !bytes.Equal(got.Data, a.Data) {
			t.Errorf("ata %+v, want %+v", got, a)
		}
	}
	// LBA28 carries the device bits in its fourth byte, as ATA does.
	b := aoe.AppendATA(nil, aoe.ATA{LBA: 0x0fffffff})
	if b[7] != 0xef {
		t.Errorf("lba3 = %#x, want 0xef", b[7])
	}
	c := aoe.Config{BufferCount: 16, Firmware: 0x4019, SectorCount: 2, Version: 1, Command: aoe.ConfigSet, String: []byte("node-1")}
	gc, err := aoe.ParseConfig(aoe.AppendConfig(nil, c))
	if err != nil || gc.BufferCount != 16 || gc.SectorCount != 2 || gc.Version != 1 || gc.Command != aoe.ConfigSet || string(gc.String) != "node-1" {
		t.Errorf("config %+v %v", gc, err)
	}
	m := aoe.MaskList{Command: aoe.MaskEdit, Directives: []aoe.Directive{{Command: aoe.DirectiveAdd, MAC: nodeMAC}}}
	gm, err := aoe.ParseMaskList(aoe.AppendMaskList(nil, m))
	if err != nil || len(gm.Directives) != 1 || !bytes.Equal(gm.Directives[0].MAC, nodeMAC) || gm.Command != aoe.MaskEdit {
		t.Errorf("mask list %+v %v", gm, err)
	}
	for _, short := range [][]byte{nil, make([]byte, 23)} {
		if _, err := aoe.ParseFrame(short); !errors.Is(err, aoe.ErrShort) {
			t.Errorf("%d bytes: %v", len(short), err)
		}
	}
}

func FuzzParse(f *testing.F) {
	h := aoe.Header{Dst: targetMAC, Src: nodeMAC, Version: 1, Shelf: 1, Slot: 1}
	f.Add(aoe.AppendATA(aoe.AppendHeader(nil, h), aoe.ATA{SectorCount: 2, CmdStatus: aoe.ATARead48, Flags: aoe.ATAFlagExtended}))
	h.Command = aoe.CmdQueryConfig
	f.Add(aoe.AppendConfig(aoe.AppendHeader(nil, h), aoe.Config{String: []byte("x")}))
	h.Command = aoe.CmdMACMask
	f.Add(aoe.AppendMaskList(aoe.AppendHeader(nil, h), aoe.MaskList{Directives: []aoe.Directive{{MAC: nodeMAC}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := aoe.ParseFrame(b)
		if err != nil {
			return
		}
		if a, err := aoe.ParseATA(fr.Payload); err == nil {
			again, err := aoe.ParseATA(aoe.AppendATA(nil, a))
			if err != nil || again.LBA != a.LBA || again.SectorCount != a.SectorCount || !bytes.Equal(again.Data, a.Data) {
				t.Fatalf("ata does not round-trip: %+v -> %+v %v", a, again, err)
			}
		}
		if c, err := aoe.ParseConfig(fr.Payload); err == nil {
			if again, err := aoe.ParseConfig(aoe.AppendConfig(nil, c)); err != nil || !bytes.Equal(again.String, c.String) {
				t.Fatalf("config does not round-trip: %v", err)
			}
		}
		if m, err := aoe.ParseMaskList(fr.Payload); err == nil {
			if again, err := aoe.ParseMaskList(aoe.AppendMaskList(nil, m)); err != nil || len(again.Directives) != len(m.Directives) {
				t.Fatalf("mask list does not round-trip: %v", err)
			}
		}
	})
}

// fileBackend is a sparse file of n sectors.
func fileBackend(t *testing.T, sectors int64) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "vol"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(sectors * aoe.SectorSize); err != nil {
		t.Fatal(err)
	}
	return f
}

// serve starts a target on seg with one export, e1.1 of 64 MiB unless
// tuned.
func serve(t *testing.T, seg *aoetest.Segment, tune func(*aoe.Export)) (*aoe.Target, *os.File) {
	t.Helper()
	dev := fileBackend(t, 64<<11)
	e := aoe.Export{Shelf: 1, Slot: 1, Sectors: 64 << 11, Dev: dev, Serial: "vol-0123456789", Model: "Koala EBS", AllowAll: true}
	if tune != nil {
		tune(&e)
	}
	port := seg.NewPort(targetMAC, 1500)
	tg := aoe.NewTarget(port, 4, nil)
	if err := tg.Add(e); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tg.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); port.Close(); <-done })
	return tg, dev
}

func dial(t *testing.T, seg *aoetest.Segment, mac net.HardwareAddr, wait time.Duration) (*aoe.Initiator, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	in, err := aoe.Dial(ctx, seg.NewPort(mac, 1500), 1, 1)
	if err == nil {
		t.Cleanup(func() { in.Close() })
	}
	return in, err
}

func TestTargetAndInitiator(t *testing.T) {
	seg := &aoetest.Segment{}
	_, dev := serve(t, seg, nil)
	in, err := dial(t, seg, nodeMAC, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if in.Size() != 64<<20 || in.Serial != "vol-0123456789" || in.Model != "Koala EBS" || !bytes.Equal(in.Target(), targetMAC) {
		t.Fatalf("size %d serial %q model %q target %s", in.Size(), in.Serial, in.Model, in.Target())
	}
	data := make([]byte, 1<<20+3*512)
	rand.Read(data)
	if _, err := in.WriteAt(data, 7*512); err != nil {
		t.Fatal(err)
	}
	if err := in.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	onDisk := make([]byte, len(data))
	dev.ReadAt(onDisk, 7*512)
	if !bytes.Equal(onDisk, data) {
		t.Fatal("the file does not hold what was written")
	}
	got := make([]byte, len(data))
	if _, err := in.ReadAt(got, 7*512); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, data))
	}
	// The last sector reads; one past it is refused by the device.
	if _, err := in.ReadAt(make([]byte, 512), in.Size()-512); err != nil {
		t.Errorf("last sector: %v", err)
	}
	if _, err := in.ReadAt(make([]byte, 512), in.Size()); err == nil {
		t.Error("a read past the end succeeded")
	}
	if _, err := in.ReadAt(make([]byte, 100), 0); !errors.Is(err, aoe.ErrAlign) {
		t.Errorf("unaligned read: %v", err)
	}
}

func TestLossyLink(t *testing.T) {
	var n atomic.Int64
	seg := &aoetest.Segment{Drop: func([]byte) bool { return n.Add(1)%5 == 0 }} // every fifth frame lost
	serve(t, seg, nil)
	in, err := dial(t, seg, nodeMAC, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 256<<10)
	rand.Read(data)
	if _, err := in.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := in.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back over a lossy link: %v, equal %v", err, bytes.Equal(got, data))
	}
}

func TestMACMask(t *testing.T) {
	seg := &aoetest.Segment{}
	tg, _ := serve(t, seg, func(e *aoe.Export) { e.AllowAll, e.Allow = false, []net.HardwareAddr{nodeMAC} })
	if _, err := dial(t, seg, otherMAC, 500*time.Millisecond); !errors.Is(err, aoe.ErrNoTarget) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a MAC outside the mask list found the export: %v", err)
	}
	in, err := dial(t, seg, nodeMAC, 5*time.Second)
	if err != nil {
		t.Fatalf("the listed MAC: %v", err)
	}
	// Taken off the list, the node's requests go unanswered.
	tg.SetAllow(1, 1, []net.HardwareAddr{otherMAC})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := in.Flush(ctx); err == nil {
		t.Fatal("a MAC taken off the list still flushed")
	}
	if _, err := dial(t, seg, otherMAC, 5*time.Second); err != nil {
		t.Fatalf("the newly listed MAC: %v", err)
	}
}
