//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
)

// TestBenchSnapshots measures snapshots on ebs and walrus started from
// this tree, next to the raw work in the same run: reading the data from
// the volume's file and hashing it (SHA-256, one thread), which every
// snapshot must do at least. A 1 GiB volume holds 256 MiB of distinct
// data; the rows are a first snapshot (every chunk goes to walrus), a
// second with nothing changed (all deduplicated), a third after 16 MiB
// changed, and a new volume filled from the first snapshot in the
// background. KOALA_BENCH=1 (bench/snapshots.sh) runs it.
func TestBenchSnapshots(t *testing.T) {
	benchOnly(t)
	st := startEBS(t)
	ctx := context.Background()
	const dataMiB = 256
	v, err := st.client.CreateVolume(ctx, "vol-0be0c000000000001", api.VolumeRequest{SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(st.dataDir, "volumes", v.ID+".img")
	// The data goes straight into the volume's file (no one is attached;
	// ebs reads the file as it is), a MiB at a time.
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(fromMiB, mib int) {
		f, err := os.OpenFile(file, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 1<<20)
		for i := fromMiB; i < fromMiB+mib; i++ {
			for j := 0; j < len(buf); j += 8 {
				x := rng.Uint64()
				for k := range 8 {
					buf[j+k] = byte(x >> (8 * k))
				}
			}
			if _, err := f.WriteAt(buf, int64(i)<<20); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	fill(0, dataMiB)

	// Baseline: read the volume's 1 GiB file and hash what is not zero,
	// once to bring it all into the page cache (reading a hole there
	// costs fresh pages on this VM, as the first snapshot would pay),
	// then timed.
	buf := make([]byte, 1<<20)
	var start time.Time
	for pass := range 2 {
		start = time.Now()
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off < 1<<30; off += 1 << 20 {
			if _, err := f.ReadAt(buf, off); err != nil {
				t.Fatal(err)
			}
			if off < dataMiB<<20 && pass == 1 {
				sha256.Sum256(buf)
			}
		}
		f.Close()
	}
	raw := time.Since(start)

	snap := func(id string) (time.Duration, api.SnapshotJob) {
		start := time.Now()
		j, err := st.client.CreateSnapshot(ctx, id, api.SnapshotRequest{VolumeID: v.ID})
		for err == nil && j.State == api.SnapshotPending {
			time.Sleep(5 * time.Millisecond)
			j, err = st.client.Snapshot(ctx, id)
		}
		if err != nil || j.State != api.SnapshotCompleted {
			t.Fatalf("snapshot %s: %+v %v", id, j, err)
		}
		return time.Since(start), j
	}
	rate := func(mib int, d time.Duration) string { return fmt.Sprintf("%.0f MiB/s", float64(mib)/d.Seconds()) }
	row := func(what string, d time.Duration, j api.SnapshotJob) string {
		return fmt.Sprintf("| %s | %.2f s | %s | %d (%d MiB) |", what, d.Seconds(), rate(dataMiB, d), j.ChunksStored, j.BytesStored>>20)
	}
	rows := []string{fmt.Sprintf("| baseline: read the 1 GiB file (in the page cache), SHA-256 of its %d MiB of data (test process, one thread) | %.2f s | %s | — |",
		dataMiB, raw.Seconds(), rate(dataMiB, raw))}
	d, j := snap("snap-0be0c000000000001")
	rows = append(rows, row("first snapshot: every chunk stored in walrus", d, j))
	d, j = snap("snap-0be0c000000000002")
	rows = append(rows, row("second snapshot, nothing changed", d, j))
	fill(64, 16)
	d, j = snap("snap-0be0c000000000003")
	rows = append(rows, row("third snapshot, 16 MiB changed", d, j))

	start = time.Now()
	w, err := st.client.CreateVolume(ctx, "vol-0be0c000000000002", api.VolumeRequest{SizeGiB: 1, SnapshotID: "snap-0be0c000000000001"})
	for err == nil && !w.Filled {
		time.Sleep(5 * time.Millisecond)
		w, err = st.client.GetVolume(ctx, w.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
	d = time.Since(start)
	rows = append(rows, fmt.Sprintf("| new volume from the first snapshot, filled from walrus in the background | %.2f s | %s | — |",
		d.Seconds(), rate(dataMiB, d)))

	table := fmt.Sprintf("## Snapshots: a 1 GiB volume holding %d MiB of data (ebs and walrus on one host)\n\n", dataMiB) +
		"Throughput is over the data; ebs reads the whole volume but stores no chunk of zeros. " +
		"Walrus writes and fsyncs each new 1 MiB chunk and commits its record.\n\n" +
		"| run | time | throughput | chunks stored |\n|---|---|---|---|\n"
	for _, r := range rows {
		table += r + "\n"
	}
	benchReport(t, table)
}
