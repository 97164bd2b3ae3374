package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// peakHeap samples the heap while f runs and returns the largest HeapInuse
// and Sys seen above what they were before.
func peakHeap(f func()) (heap, sys uint64) {
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var (
		mu       sync.Mutex
		maxHeap  = base.HeapInuse
		maxSys   = base.Sys
		done     = make(chan struct{})
		finished = make(chan struct{})
	)
	go func() {
		defer close(finished)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var s runtime.MemStats
			runtime.ReadMemStats(&s)
			mu.Lock()
			maxHeap = max(maxHeap, s.HeapInuse)
			maxSys = max(maxSys, s.Sys)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	<-finished
	return maxHeap - base.HeapInuse, maxSys - base.Sys
}

// TestBoundedMemory streams a 256 MiB image through Create and Open with
// the parts on disk: the heap must stay far below the image size.
func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("256 MiB round trip")
	}
	const size = 256 << 20
	const limit = 64 << 20
	dir := Dir(t.TempDir())
	want := sha256.New()
	var doc []byte
	heap, sys := peakHeap(func() {
		var err error
		src := io.TeeReader(newGenReader(7, size), want)
		doc, err = Create(context.Background(), src, createOpts(t, "big.img", size), dir)
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("Create: heap grew by at most %d KiB, sys by %d KiB", heap>>10, sys>>10)
	if heap > limit || sys > limit {
		t.Errorf("Create used too much memory: heap +%d MiB, sys +%d MiB", heap>>20, sys>>20)
	}

	k := loadKeys(t)
	m, err := ParseManifest(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(k.userCert); err != nil {
		t.Fatal(err)
	}
	key, iv, err := m.Keys(Decrypter(k.cloudKey))
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	heap, sys = peakHeap(func() {
		rc, err := Open(context.Background(), m, key, iv, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		n, err := io.Copy(got, rc)
		if err != nil || n != size {
			t.Fatalf("read %d bytes: %v", n, err)
		}
	})
	t.Logf("Open: heap grew by at most %d KiB, sys by %d KiB; %d parts", heap>>10, sys>>10, len(m.Parts))
	if heap > limit || sys > limit {
		t.Errorf("Open used too much memory: heap +%d MiB, sys +%d MiB", heap>>20, sys>>20)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Error("image differs after the round trip")
	}
}

func BenchmarkOpen(b *testing.B) {
	const size = 32 << 20
	store := newMemStore()
	doc, err := Create(context.Background(), newGenReader(3, size), createOpts(b, "bench.img", size), store)
	if err != nil {
		b.Fatal(err)
	}
	k := loadKeys(b)
	m, err := ParseManifest(doc)
	if err != nil {
		b.Fatal(err)
	}
	key, iv, err := m.Keys(Decrypter(k.cloudKey))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		rc, err := Open(context.Background(), m, key, iv, store)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

func BenchmarkCreate(b *testing.B) {
	const size = 32 << 20
	opts := createOpts(b, "bench.img", size)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Create(context.Background(), newGenReader(3, size), opts, discardSink{}); err != nil {
			b.Fatal(err)
		}
	}
}

type discardSink struct{}

func (discardSink) Create(context.Context, string) (io.WriteCloser, error) {
	return nopWriteCloser{io.Discard}, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
