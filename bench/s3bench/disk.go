package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// diskResult is the raw-disk baseline.
type diskResult struct {
	size int64       // bytes written and read sequentially
	seq  []seqResult // before the S3 workloads, and after them

	smallWrites float64 // 4 KiB create+write+fsync+close per second, 16 goroutines
	smallReads  float64 // 4 KiB open+read+close per second, 16 goroutines
}

// seqResult is one sequential write and read of the raw-disk file.
type seqResult struct {
	writeMiBs float64 // fsync included
	readMiBs  float64
	resident  float64 // fraction of the file in the page cache when the read began
}

// write is the sequential write rate: the mean of the measurements.
func (d diskResult) write() float64 {
	return mean(d.seq, func(s seqResult) float64 { return s.writeMiBs })
}

// read is the sequential read rate: the mean of the measurements.
func (d diskResult) read() float64 {
	return mean(d.seq, func(s seqResult) float64 { return s.readMiBs })
}

// resident is the least of the file that was in the page cache for a read.
func (d diskResult) resident() float64 {
	r := 1.0
	for _, s := range d.seq {
		r = min(r, s.resident)
	}
	return r
}

func mean[T any](xs []T, f func(T) float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range xs {
		sum += f(x)
	}
	return sum / float64(len(xs))
}

const (
	smallSize    = 4 << 10
	smallClients = 16
)

// Where the raw-disk files go, in the work directory.
const (
	rawSeqName   = "raw-seq"
	rawSmallName = "raw-small"
)

// measureDisk measures the raw-disk baseline in dir: the filesystem
// walrus's data directory is on. It leaves its files for removeRaw: on
// ext4 without a journal, creating an inode skips (at a CPU cost) inodes
// freed in the last minutes, so deleting thousands of small files now
// would slow down walrus's PUTs that follow.
func measureDisk(ctx context.Context, dir string, p plan, out io.Writer) (diskResult, error) {
	r := diskResult{size: p.rawSize}
	if err := r.measureSeq(ctx, dir, out); err != nil {
		return r, err
	}

	small := filepath.Join(dir, rawSmallName)
	if err := os.RemoveAll(small); err != nil {
		return r, err
	}
	if err := os.Mkdir(small, 0o700); err != nil {
		return r, err
	}
	cpu := clientCPU()
	names, rate, err := smallWrites(ctx, small, p.smallFor)
	if err != nil {
		return r, err
	}
	r.smallWrites = rate
	fmt.Fprintf(out, "raw disk: 4 KiB create+write+fsync+close, %d goroutines: %.0f files/s, %.2f CPUs\n",
		smallClients, rate, (clientCPU()-cpu).Seconds()/p.smallFor.Seconds())
	cpu = clientCPU()
	if r.smallReads, err = smallReads(ctx, names, p.smallFor); err != nil {
		return r, err
	}
	fmt.Fprintf(out, "raw disk: 4 KiB open+read+close, %d goroutines: %.0f files/s, %.2f CPUs\n",
		smallClients, r.smallReads, (clientCPU()-cpu).Seconds()/p.smallFor.Seconds())
	return r, nil
}

// measureSeq writes a raw-disk file sequentially and reads it back, and
// adds the result to r.seq. Each measurement writes a file of its own and
// deletes none: in a VM whose freed memory goes back to the host, writing
// into pages just freed runs two to three times faster than writing into
// memory the guest has not touched lately, and walrus writes its objects
// into the latter.
func (r *diskResult) measureSeq(ctx context.Context, dir string, out io.Writer) error {
	path := filepath.Join(dir, fmt.Sprintf("%s-%d", rawSeqName, len(r.seq)+1))
	fmt.Fprintf(out, "raw disk: sequential write of %s in 1 MiB writes + fsync ... ", sizeName(r.size))
	d, err := seqWrite(ctx, path, r.size)
	if err != nil {
		return err
	}
	s := seqResult{writeMiBs: mibPerSec(r.size, d)}
	if s.resident, err = residentFraction(path); err != nil {
		return err
	}
	if d, err = seqRead(path); err != nil {
		return err
	}
	s.readMiBs = mibPerSec(r.size, d)
	fmt.Fprintf(out, "%.0f MiB/s; read back: %.0f MiB/s, %.0f%% from the page cache\n", s.writeMiBs, s.readMiBs, 100*s.resident)
	r.seq = append(r.seq, s)
	return nil
}

// removeRaw removes the files measureDisk left in dir.
func removeRaw(dir string) error {
	seq, _ := filepath.Glob(filepath.Join(dir, rawSeqName+"-*"))
	errs := []error{os.RemoveAll(filepath.Join(dir, rawSmallName))}
	for _, p := range seq {
		errs = append(errs, os.Remove(p))
	}
	return errors.Join(errs...)
}

// seqWrite writes size bytes to a new file at path in 1 MiB writes and
// fsyncs it; the time includes the fsync.
func seqWrite(ctx context.Context, path string, size int64) (time.Duration, error) {
	buf := randomBytes(1 << 20)
	_ = os.Remove(path)
	start := time.Now()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for left := size; left > 0; left -= int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if _, err := f.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	d := time.Since(start)
	return d, f.Close()
}

// seqRead reads the file at path in 1 MiB reads and discards it.
func seqRead(path string) (time.Duration, error) {
	buf := make([]byte, 1<<20)
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for {
		_, err := f.Read(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// residentFraction is the share of path's pages in the page cache.
func residentFraction(path string) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0, err
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return 0, fmt.Errorf("mmap %s: %w", path, err)
	}
	defer syscall.Munmap(data)
	page := int64(os.Getpagesize())
	vec := make([]byte, (st.Size()+page-1)/page)
	_, _, errno := syscall.Syscall(syscall.SYS_MINCORE,
		uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return 0, fmt.Errorf("mincore %s: %w", path, errno)
	}
	in := 0
	for _, v := range vec {
		in += int(v & 1)
	}
	return float64(in) / float64(len(vec)), nil
}

// smallWrites creates 4 KiB files in dir from 16 goroutines for d, each
// written, fsynced and closed, and returns their names and the rate.
func smallWrites(ctx context.Context, dir string, d time.Duration) ([]string, float64, error) {
	buf := randomBytes(smallSize)
	var (
		mu    sync.Mutex
		names []string
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range smallClients {
		wg.Go(func() {
			var mine []string
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				name := filepath.Join(dir, fmt.Sprintf("w%02d-%07d", w, i))
				if err := writeSmall(name, buf); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
					return
				}
				mine = append(mine, name)
			}
			mu.Lock()
			names = append(names, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first == nil {
		first = ctx.Err()
	}
	return names, float64(len(names)) / elapsed.Seconds(), first
}

func writeSmall(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// smallReads opens, reads and closes random files of names from 16
// goroutines for d and returns the rate.
func smallReads(ctx context.Context, names []string, d time.Duration) (float64, error) {
	if len(names) == 0 {
		return 0, errors.New("no small files to read")
	}
	var (
		n     atomic.Int64
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for range smallClients {
		wg.Go(func() {
			buf := make([]byte, smallSize)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := readSmall(names[rand.IntN(len(names))], buf); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return float64(n.Load()) / time.Since(start).Seconds(), first
}

func readSmall(name string, buf []byte) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.ReadFull(f, buf)
	return err
}

// randomBytes returns n bytes that do not compress.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{'s', '3', 'b', 'e', 'n', 'c', 'h'})
	_, _ = r.Read(b)
	return b
}

func mibPerSec(bytes int64, d time.Duration) float64 {
	return float64(bytes) / (1 << 20) / d.Seconds()
}

// sizeName writes a power-of-two size as "4 KiB", "256 MiB", "1 GiB".
func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
