// Command diskbench measures a block device from inside a guest:
// sequential write and read, then 4 KiB random writes and reads, all
// with O_DIRECT (the guest's page cache left out), and prints one line:
//
//	diskbench dev=/dev/vdb seq_write_mibs=.. seq_read_mibs=.. rand_write_iops=.. rand_read_iops=..
//
// It is built static for the demo guest by test/e2e's volume benchmark.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	dev := flag.String("dev", "/dev/vdb", "block device")
	seqMiB := flag.Int("seq-mib", 64, "MiB written and read sequentially")
	ops := flag.Int("rand-ops", 2000, "4 KiB random writes, then reads")
	span := flag.Int("span-mib", 64, "MiB the random offsets fall in")
	flag.Parse()
	f, err := os.OpenFile(*dev, os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		fmt.Println("diskbench error:", err)
		os.Exit(1)
	}
	defer f.Close()
	big := aligned(1 << 20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	mibs := func(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
	start := time.Now()
	for i := range *seqMiB {
		if _, err := f.WriteAt(big, int64(i)<<20); err != nil {
			fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		fail(err)
	}
	seqW := mibs(*seqMiB, time.Since(start))
	start = time.Now()
	for i := range *seqMiB {
		if _, err := f.ReadAt(big, int64(i)<<20); err != nil {
			fail(err)
		}
	}
	seqR := mibs(*seqMiB, time.Since(start))
	small := aligned(4096)
	blocks := int64(*span) << 8 // 4 KiB blocks in the span
	rng := rand.New(rand.NewPCG(1, 2))
	start = time.Now()
	for range *ops {
		if _, err := f.WriteAt(small, rng.Int64N(blocks)*4096); err != nil {
			fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		fail(err)
	}
	randW := float64(*ops) / time.Since(start).Seconds()
	start = time.Now()
	for range *ops {
		if _, err := f.ReadAt(small, rng.Int64N(blocks)*4096); err != nil {
			fail(err)
		}
	}
	randR := float64(*ops) / time.Since(start).Seconds()
	fmt.Printf("diskbench dev=%s seq_write_mibs=%.1f seq_read_mibs=%.1f rand_write_iops=%.0f rand_read_iops=%.0f\n",
		*dev, seqW, seqR, randW, randR)
}

// aligned returns n bytes aligned to 4096, as O_DIRECT wants.
func aligned(n int) []byte {
	b := make([]byte, n+4096)
	off := int(4096 - uintptr(unsafe.Pointer(&b[0]))%4096)
	if off == 4096 {
		off = 0
	}
	return b[off : off+n]
}

func fail(err error) {
	fmt.Println("diskbench error:", err)
	os.Exit(1)
}
