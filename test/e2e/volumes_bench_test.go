//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/aoe"
	"github.com/koala-cloud/koala/pkg/nbd"
)

// benchGuestInit runs bench/diskbench on the guest's disk: the kernel's
// aoe driver's e7.1 with koala.bench=aoe on the command line, else the
// first virtio disk.
const benchGuestInit = `#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
kver=$(uname -r); mods=/lib/modules/$kver
while read -r m; do insmod "$mods/$m" 2>/dev/null; done < "$mods/koala.load"
dev=/dev/vda
case " $(cat /proc/cmdline) " in
*" koala.bench=aoe "*)
  ip link set eth0 up
  modprobe aoe aoe_iflist=eth0
  dev=/dev/etherd/e7.1 ;;
esac
i=0; while [ ! -b $dev ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
/diskbench -dev $dev -seq-mib 32 -rand-ops 1000 -span-mib 32
poweroff -f
`

// TestBenchVolumeDisks measures, from inside a qemu guest (TCG), a 64 MiB
// disk four ways in one run: a raw file as a virtio disk (the baseline);
// this project's AoE target read by the guest kernel's aoe driver; the
// same driver reading Debian's vblade; and the path an attached volume
// takes (qemu's NBD client, pkg/nbd, the user-space AoE initiator, the
// target over a veth). KOALA_BENCH=1 (bench/volumes.sh) runs it.
func TestBenchVolumeDisks(t *testing.T) {
	if os.Getenv("KOALA_BENCH") != "1" {
		t.Skip("a benchmark: KOALA_BENCH=1 (bench/volumes.sh) runs it")
	}
	require(t, onPath("qemu-system-x86_64"), onPath("cpio"), onPath("vblade"), onPath("go"))
	dir := t.TempDir()
	bench := filepath.Join(dir, "diskbench")
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", bench, "./bench/diskbench")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build diskbench: %v\n%s", err, out)
	}
	prog, err := os.ReadFile(bench)
	if err != nil {
		t.Fatal(err)
	}
	demo := demoImages(t)
	initrd := guestInitrd(t, dir, map[string][]byte{"init": []byte(benchGuestInit), "diskbench": prog})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	volume := func(name string) *os.File {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		f.Truncate(64 << 20)
		return f
	}
	result := regexp.MustCompile(`diskbench dev=\S+ seq_write_mibs=(\S+) seq_read_mibs=(\S+) rand_write_iops=(\S+) rand_read_iops=(\S+)`)
	var rows []string
	measure := func(name, cmdline string, args ...string) {
		t.Helper()
		began := time.Now()
		out := runGuest(t, ctx, dir, demo, initrd, cmdline, args...)
		m := result.FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("%s: no result on the console:\n%s", name, out)
		}
		t.Logf("%s: %s (%s)", name, m[0], time.Since(began).Round(time.Second))
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s |", name, m[1], m[2], m[3], m[4]))
	}
	tapArgs := func(tap string) []string {
		return []string{"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:be:00:01"}
	}

	raw := volume("raw.img")
	measure("raw file, virtio disk (baseline)", "", "-drive", "file="+raw.Name()+",format=raw,if=virtio,cache=writeback")

	tap := newTap(t, fmt.Sprintf("kbt%d", os.Getpid()%100000))
	conn, err := aoe.ListenBlocking(tap)
	if err != nil {
		t.Fatal(err)
	}
	tg := aoe.NewTarget(conn, 4, nil)
	tg.Add(aoe.Export{Shelf: 7, Slot: 1, Sectors: 64 << 11, Dev: volume("koala.img"), AllowAll: true})
	tctx, tcancel := context.WithCancel(ctx)
	go tg.Serve(tctx)
	measure("koala target, guest kernel aoe", "koala.bench=aoe", tapArgs(tap)...)
	tcancel()
	conn.Close()

	vb := exec.Command("vblade", "7", "1", tap, volume("vblade.img").Name())
	if err := vb.Start(); err != nil {
		t.Fatal(err)
	}
	measure("vblade, guest kernel aoe", "koala.bench=aoe", tapArgs(tap)...)
	vb.Process.Kill()
	vb.Wait()

	// The attached-volume path: qemu's NBD client -> pkg/nbd -> the
	// user-space initiator -> veth -> the target.
	a, b := fmt.Sprintf("kbv%d-a", os.Getpid()%100000), fmt.Sprintf("kbv%d-b", os.Getpid()%100000)
	if out, err := exec.Command("ip", "link", "add", a, "type", "veth", "peer", "name", b).CombinedOutput(); err != nil {
		t.Fatalf("veth: %v: %s", err, out)
	}
	defer exec.Command("ip", "link", "del", a).Run()
	exec.Command("ip", "link", "set", a, "up").Run()
	exec.Command("ip", "link", "set", b, "up").Run()
	tconn, err := aoe.ListenBlocking(b)
	if err != nil {
		t.Fatal(err)
	}
	defer tconn.Close()
	tg2 := aoe.NewTarget(tconn, 4, nil)
	tg2.Add(aoe.Export{Shelf: 7, Slot: 1, Sectors: 64 << 11, Dev: volume("attached.img"), AllowAll: true})
	go tg2.Serve(ctx)
	iconn, err := aoe.Listen(a)
	if err != nil {
		t.Fatal(err)
	}
	in, err := aoe.Dial(ctx, iconn, 7, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	srv := nbd.NewServer(nil)
	srv.Add(nbd.Export{Name: "vol", Dev: in, Size: in.Size(), BlockSize: aoe.SectorSize})
	sock := filepath.Join(dir, "nbd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx, ln)
	measure("koala attached volume (NBD + user-space AoE)", "", "-drive", "file=nbd+unix:///vol?socket="+sock+",format=raw,if=virtio")

	table := "## Volumes: a 64 MiB disk measured inside a qemu guest (TCG, 1 vCPU)\n\n" +
		"O_DIRECT in the guest; sequential 1 MiB writes (then fsync) and reads of 32 MiB; 1,000 random 4 KiB writes (then fsync) and reads within 32 MiB.\n\n" +
		"| disk | seq write MiB/s | seq read MiB/s | 4 KiB rand write IOPS | 4 KiB rand read IOPS |\n|---|---|---|---|---|\n" +
		strings.Join(rows, "\n") + "\n"
	t.Log("\n" + table)
	if out := os.Getenv("BENCH_OUT"); out != "" {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			f.WriteString(table)
			f.Close()
		}
	}
}
