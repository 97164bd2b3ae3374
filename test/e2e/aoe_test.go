//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/aoe"
)

// aoeGuestInit is the /init of a guest that loads the kernel's aoe driver
// on eth0, reads the first MiB of e7.1, writes 2 MiB of random data at
// 4 MiB, reads them back past its page cache, and prints checksums.
const aoeGuestInit = `#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
kver=$(uname -r); mods=/lib/modules/$kver
while read -r m; do insmod "$mods/$m" 2>/dev/null; done < "$mods/koala.load"
ip link set eth0 up
modprobe aoe aoe_iflist=eth0 || insmod "$(find "$mods" -name aoe.ko)" aoe_iflist=eth0
i=0; while [ ! -b /dev/etherd/e7.1 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
echo "koala-aoe dev=$(ls /dev/etherd 2>&1 | tr '\n' ' ')"
sum() { sha256sum | cut -d' ' -f1; }
echo "koala-aoe read=$(dd if=/dev/etherd/e7.1 bs=1048576 count=1 2>/dev/null | sum)"
dd if=/dev/urandom of=/tmp/w bs=1048576 count=2 2>/dev/null
echo "koala-aoe wrote=$(sum < /tmp/w)"
dd if=/tmp/w of=/dev/etherd/e7.1 bs=1048576 seek=4 conv=fsync 2>/dev/null
sync; echo 3 > /proc/sys/vm/drop_caches
echo "koala-aoe back=$(dd if=/dev/etherd/e7.1 bs=1048576 skip=4 count=2 2>/dev/null | sum)"
echo "koala-aoe done"
poweroff -f
`

// TestAoEKernelInitiator has the Linux kernel's aoe driver, in a qemu
// guest on a tap, read and write a volume this project's target serves:
// the checksums the guest prints match the file on this host.
func TestAoEKernelInitiator(t *testing.T) {
	t.Parallel()
	require(t, onPath("qemu-system-x86_64"), onPath("cpio"), onPath("ip"))
	if os.Geteuid() != 0 {
		require(t, prereq{what: "root (tap devices, AF_PACKET)", check: func() error { return fmt.Errorf("not root") }})
	}
	demo := demoImages(t)
	dir := t.TempDir()
	initrd := guestInitrd(t, dir, map[string][]byte{"init": []byte(aoeGuestInit)})

	tap := newTap(t, fmt.Sprintf("kat%d", os.Getpid()%100000))

	// The volume: 64 MiB, the first MiB random.
	volPath := filepath.Join(dir, "vol")
	vol, err := os.Create(volPath)
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Close()
	vol.Truncate(64 << 20)
	head := make([]byte, 1<<20)
	rand.Read(head)
	vol.WriteAt(head, 0)
	conn, err := aoe.ListenBlocking(tap)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tg := aoe.NewTarget(conn, 4, nil)
	if err := tg.Add(aoe.Export{Shelf: 7, Slot: 1, Sectors: 64 << 11, Dev: vol, Serial: "vol-kernel", Model: "Koala EBS", AllowAll: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	go tg.Serve(ctx)

	began := time.Now()
	out := runGuest(t, ctx, dir, demo, initrd, "", "-netdev", "tap,id=n0,ifname="+tap+",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:a0:e0:01")
	t.Logf("guest ran %s:\n%s", time.Since(began).Round(time.Millisecond),
		bytes.Join(regexp.MustCompile(`koala-aoe [^\r\n]*`).FindAll(out, -1), []byte("\n")))
	field := func(name string) string {
		m := regexp.MustCompile(`koala-aoe ` + name + `=(\S*)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("no %s line on the console:\n%s", name, out)
		}
		return string(m[1])
	}
	headSum := sha256.Sum256(head)
	if got := field("read"); got != hex.EncodeToString(headSum[:]) {
		t.Errorf("the guest read %s, the volume's first MiB is %x", got, headSum)
	}
	onDisk := make([]byte, 2<<20)
	vol.ReadAt(onDisk, 4<<20)
	diskSum := sha256.Sum256(onDisk)
	wrote, back := field("wrote"), field("back")
	if wrote != hex.EncodeToString(diskSum[:]) || back != wrote {
		t.Errorf("the guest wrote %s and read back %s; the volume holds %x", wrote, back, diskSum)
	}
}

// guestInitrd writes, under dir, the demo ramdisk with files appended (a
// later cpio archive's files replace an earlier one's: "init" replaces
// the demo's) and returns its path.
func guestInitrd(t *testing.T, dir string, files map[string][]byte) string {
	t.Helper()
	tree := filepath.Join(dir, "initrd-extra")
	os.MkdirAll(tree, 0o755)
	var names []string
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(tree, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	cmd := exec.Command("cpio", "-o", "-H", "newc", "--quiet")
	cmd.Dir, cmd.Stdin = tree, strings.NewReader(strings.Join(names, "\n")+"\n")
	extra, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join(demoImages(t), "initrd.img"))
	if err != nil {
		t.Fatal(err)
	}
	for len(base)%4 != 0 { // the kernel finds an archive only at a 4-byte boundary
		base = append(base, 0)
	}
	path := filepath.Join(dir, "initrd.img")
	if err := os.WriteFile(path, append(base, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// newTap makes an up tap device, removed at the end of the test.
func newTap(t *testing.T, name string) string {
	t.Helper()
	if out, err := exec.Command("ip", "tuntap", "add", "dev", name, "mode", "tap").CombinedOutput(); err != nil {
		t.Fatalf("tap: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	if out, err := exec.Command("ip", "link", "set", name, "up").CombinedOutput(); err != nil {
		t.Fatalf("tap up: %v: %s", err, out)
	}
	return name
}

// runGuest boots the demo kernel with initrd under qemu (TCG) until the
// guest powers off, with cmdline appended to the kernel's and args given
// to qemu, and returns its console.
func runGuest(t *testing.T, ctx context.Context, dir, demo, initrd, cmdline string, args ...string) []byte {
	t.Helper()
	console := filepath.Join(dir, fmt.Sprintf("console-%d.log", time.Now().UnixNano()))
	qemu := exec.CommandContext(ctx, "qemu-system-x86_64", append([]string{"-machine", "accel=tcg", "-m", "256", "-no-reboot",
		"-display", "none", "-monitor", "none", "-serial", "file:" + console,
		"-kernel", filepath.Join(demo, "vmlinuz"), "-initrd", initrd,
		"-append", strings.TrimSpace("console=ttyS0 panic=-1 quiet " + cmdline)}, args...)...)
	var qout bytes.Buffer
	qemu.Stdout, qemu.Stderr = &qout, &qout
	err := qemu.Run()
	out, _ := os.ReadFile(console)
	if err != nil {
		t.Fatalf("qemu: %v\n%s\nconsole:\n%s", err, qout.String(), out)
	}
	return out
}
