package blockdev

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

const chunk = 4096

func newDev(t *testing.T, chunks int64) *Dev {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "vol"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(chunks * chunk); err != nil {
		t.Fatal(err)
	}
	d := Open(f, chunks*chunk, chunk)
	t.Cleanup(func() { d.Close() })
	return d
}

// pattern is chunk i of a snapshot: every byte is i+1.
type pattern struct{ reads atomic.Int64 }

func (p *pattern) ReadChunk(_ context.Context, i int64, buf []byte) error {
	p.reads.Add(1)
	for j := range buf {
		buf[j] = byte(i + 1)
	}
	return nil
}

type fillLog struct {
	mu       sync.Mutex
	bits     []byte
	complete bool
	saves    int
}

func (l *fillLog) SaveFill(bits []byte, complete bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bits, l.complete = append([]byte(nil), bits...), complete
	l.saves++
	return nil
}

func TestFreezeKeepsThePointInTime(t *testing.T) {
	d := newDev(t, 4)
	if _, err := d.WriteAt(bytes.Repeat([]byte{1}, 4*chunk), 0); err != nil {
		t.Fatal(err)
	}
	fr, err := d.Freeze(filepath.Join(t.TempDir(), "cow"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Freeze(filepath.Join(t.TempDir(), "cow2")); err != ErrFrozen {
		t.Fatalf("second freeze: %v, want ErrFrozen", err)
	}
	buf := make([]byte, chunk)
	if _, err := fr.ReadChunk(context.Background(), 0, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, bytes.Repeat([]byte{1}, chunk)) {
		t.Error("frozen chunk 0 differs")
	}
	// Written after the freeze: chunk 0 (already read), 1 and 2 (not yet).
	for _, off := range []int64{0, chunk + 100, 2 * chunk} {
		if _, err := d.WriteAt([]byte{9, 9, 9}, off); err != nil {
			t.Fatal(err)
		}
	}
	for i := int64(1); i < 4; i++ {
		if _, err := fr.ReadChunk(context.Background(), i, buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, bytes.Repeat([]byte{1}, chunk)) {
			t.Errorf("frozen chunk %d changed", i)
		}
	}
	if err := fr.Close(); err != nil {
		t.Fatal(err)
	}
	live := make([]byte, 3)
	if _, err := d.ReadAt(live, chunk+100); err != nil || !bytes.Equal(live, []byte{9, 9, 9}) {
		t.Fatalf("live device reads %v, %v", live, err)
	}
	if _, err := d.Freeze(filepath.Join(t.TempDir(), "cow3")); err != nil {
		t.Fatalf("freeze after close: %v", err)
	}
}

func TestFillOnFirstTouchAndDurableBits(t *testing.T) {
	d := newDev(t, 8)
	src, log := &pattern{}, &fillLog{}
	d.FillFrom(src, []byte{0b1000_0001}, log) // chunks 0 and 7 hold their data
	buf := make([]byte, 10)
	if _, err := d.ReadAt(buf, 3*chunk); err != nil || buf[0] != 4 {
		t.Fatalf("chunk 3 reads %v, %v; want the snapshot's 4", buf[0], err)
	}
	if _, err := d.ReadAt(buf, 0); err != nil || buf[0] != 0 {
		t.Fatalf("filled chunk 0 reads %v, %v; want its own 0", buf[0], err)
	}
	if _, err := d.WriteAt([]byte{42}, 5*chunk+7); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, chunk)
	d.ReadAt(got, 5*chunk)
	if got[7] != 42 || got[0] != 6 || got[8] != 6 {
		t.Fatalf("a write into an unfilled chunk lost the snapshot around it: %v %v %v", got[0], got[7], got[8])
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	if log.bits[0] != 0b1010_1001 || log.complete {
		t.Fatalf("saved bits %08b complete %v", log.bits[0], log.complete)
	}
	for i := range d.Chunks() {
		if err := d.FillChunk(context.Background(), i); err != nil {
			t.Fatal(err)
		}
	}
	if d.Filling() {
		t.Fatal("still filling after every chunk")
	}
	d.Sync()
	if !log.complete || src.reads.Load() != 6 {
		t.Fatalf("complete %v after %d source reads, want true after 6", log.complete, src.reads.Load())
	}
	d.ReadAt(got, 5*chunk)
	if got[7] != 42 {
		t.Fatal("filling the rest refilled a written chunk")
	}
}

func TestConcurrentFillReadsEachChunkOnce(t *testing.T) {
	d := newDev(t, 16)
	src := &pattern{}
	d.FillFrom(src, nil, &fillLog{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			buf := make([]byte, 16*chunk)
			if _, err := d.ReadAt(buf, 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := src.reads.Load(); n != 16 {
		t.Fatalf("%d source reads for 16 chunks", n)
	}
}

func TestFrozenViewOfAFillingDevice(t *testing.T) {
	d := newDev(t, 4)
	d.FillFrom(&pattern{}, nil, &fillLog{})
	fr, err := d.Freeze(filepath.Join(t.TempDir(), "cow"))
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	if _, err := d.WriteAt([]byte{0}, 2*chunk); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, chunk)
	if _, err := fr.ReadChunk(context.Background(), 2, buf); err != nil || buf[0] != 3 {
		t.Fatalf("frozen chunk 2 reads %v, %v; want the snapshot's 3", buf[0], err)
	}
}

func TestEachChunk(t *testing.T) {
	var seen [100]atomic.Int32
	if err := EachChunk(context.Background(), 100, 4, func(_ context.Context, i int64) error {
		seen[i].Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Fatalf("chunk %d seen %d times", i, n)
		}
	}
	var calls atomic.Int32
	err := EachChunk(context.Background(), 1000, 4, func(_ context.Context, i int64) error {
		calls.Add(1)
		if i == 10 {
			return os.ErrInvalid
		}
		return nil
	})
	if err != os.ErrInvalid || calls.Load() > 200 {
		t.Fatalf("after an error: %v, %d calls", err, calls.Load())
	}
}

// TestConcurrentSyncsRecordTheLatestFill: Syncs racing with fills must
// never leave an older record of the filled chunks last (a restart
// would then fill again over flushed writes).
func TestConcurrentSyncsRecordTheLatestFill(t *testing.T) {
	for range 20 {
		d := newDev(t, 64)
		log := &fillLog{}
		d.FillFrom(&pattern{}, nil, log)
		EachChunk(context.Background(), 64, 8, func(ctx context.Context, i int64) error {
			if err := d.FillChunk(ctx, i); err != nil {
				return err
			}
			return d.Sync()
		})
		d.Sync()
		if !log.complete {
			t.Fatalf("after every chunk filled and synced, the record says incomplete: %08b", log.bits)
		}
	}
}
