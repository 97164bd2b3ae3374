//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/aoe"
)

// volumeAgent is a guest script that looks for hot-plugged disks (by
// their serial, the volume ID): a disk that starts with the marker has
// its first MiB's checksum printed; any other gets the marker and a
// random MiB written (and synced) and their checksum printed.
const volumeAgent = `#!/bin/sh
(seen=" "; n=0; while true; do
  for s in /sys/block/vd[b-z]; do
    [ -e "$s/serial" ] || continue
    d=${s##*/}; serial=$(cat "$s/serial")
    [ -n "$serial" ] || continue
    case "$seen" in *" $d:$serial "*) continue ;; esac
    seen="$seen$d:$serial "
    if [ "$(head -c 17 /dev/$d)" = "koala-vol-pattern" ]; then
      echo "koala-vol found $serial $(dd if=/dev/$d bs=1048576 count=1 2>/dev/null | sha256sum | cut -d' ' -f1)"
    else
      dd if=/dev/urandom of=/tmp/p bs=1048576 count=1 2>/dev/null
      printf koala-vol-pattern | dd of=/tmp/p conv=notrunc 2>/dev/null
      dd if=/tmp/p of=/dev/$d bs=1048576 conv=fsync 2>/dev/null
      echo "koala-vol wrote $serial $(sha256sum < /tmp/p | cut -d' ' -f1)"
    fi
  done
  for seenv in $seen; do [ -e /sys/block/${seenv%%:*} ] || seen=$(echo "$seen" | sed "s# $seenv # #"); done
  for seenv in $seen; do
    n=$((n+1)); echo 3 > /proc/sys/vm/drop_caches
    if [ "$(head -c 17 /dev/${seenv%%:*})" = "koala-vol-pattern" ]; then echo "koala-vol alive $n ${seenv#*:}"; fi
  done
  sleep 1
done) >/dev/console 2>&1 &
`

// TestVolumesOnInstances attaches a volume to a running instance through
// the EC2 API; the guest writes a pattern to it; detached and attached to
// a second instance (on another node), the pattern is there. An attached
// volume cannot be deleted, nor reached from another host's MAC.
func TestVolumesOnInstances(t *testing.T) {
	t.Parallel()
	require(t, fileAt(awsBin), onPath("virsh"), onPath("qemu-img"), onPath("dnsmasq"), onPath("nft"), libvirtUp())
	st := startInstStack(t, stackSpec{
		driver: "libvirt", policies: []string{"GREEDY"}, nodes: 2, network: "MANAGED-NOVLAN", subnetBase: 190,
		capacity: capacityConfig{Cores: 1, MemoryMiB: 512, DiskGiB: 20}, storage: true,
	})
	cli := st.cli(t)
	var ids []string
	for range 2 {
		in := st.runInstances(t, "--user-data", volumeAgent)[0]
		ids = append(ids, in.InstanceID)
		t.Cleanup(func() { _, _ = cli.try(t, "ec2", "terminate-instances", "--instance-ids", in.InstanceID) })
	}
	cli.run(t, append([]string{"ec2", "wait", "instance-running", "--instance-ids"}, ids...)...)
	if a, b := st.nodeOf(ids[0]), st.nodeOf(ids[1]); a == b {
		t.Fatalf("both instances run on %s; want two nodes", a)
	}
	var v struct {
		VolumeID string `json:"VolumeId"`
	}
	cli.json(t, &v, "ec2", "create-volume", "--availability-zone", "us-east-1a", "--size", "1")
	cli.run(t, "ec2", "wait", "volume-available", "--volume-ids", v.VolumeID)

	console := func(id string) string {
		o, _ := cli.try(t, "ec2", "get-console-output", "--instance-id", id, "--output", "text", "--query", "Output")
		return o
	}
	line := func(id, vol, verb string) string {
		t.Helper()
		// The guest reads the serial EC2's NVMe volumes have: the ID
		// without its dash.
		re := regexp.MustCompile(`koala-vol ` + verb + ` ` + strings.Replace(vol, "-", "", 1) + ` ([0-9a-f]{64})`)
		var m []string
		waitFor(t, 2*time.Minute, fmt.Sprintf("%s: koala-vol %s", id, verb), func() (bool, string) {
			o := console(id)
			m = re.FindStringSubmatch(o)
			return m != nil, o
		})
		return m[1]
	}
	attach := func(id, vol string) {
		t.Helper()
		began := time.Now()
		cli.run(t, "ec2", "attach-volume", "--volume-id", vol, "--instance-id", id, "--device", "/dev/sdf")
		cli.run(t, "ec2", "wait", "volume-in-use", "--volume-ids", vol)
		waitFor(t, time.Minute, "the attachment attached", func() (bool, string) {
			out := cli.run(t, "ec2", "describe-volumes", "--volume-ids", vol, "--query", "Volumes[0].Attachments[0].State", "--output", "text")
			return strings.Contains(out, "attached"), out
		})
		t.Logf("attached to %s in %s", id, time.Since(began).Round(time.Millisecond))
	}

	attach(ids[0], v.VolumeID)
	wrote := line(ids[0], v.VolumeID, "wrote")
	// kill -9 of the node serving it: the restarted nodectl serves the
	// volume again and the guest's reads go on (qemu reconnects).
	alive := regexp.MustCompile(`koala-vol alive (\d+) ` + strings.Replace(v.VolumeID, "-", "", 1))
	lastAlive := func() int {
		n := 0
		for _, m := range alive.FindAllStringSubmatch(console(ids[0]), -1) {
			n = max(n, atoi(m[1]))
		}
		return n
	}
	node := st.nodeByName(st.nodeOf(ids[0]))
	node.kill9()
	if err := node.start(); err != nil {
		t.Fatal(err)
	}
	before := lastAlive()
	waitFor(t, time.Minute, "the guest reading its volume after nodectl's restart", func() (bool, string) {
		return lastAlive() > before+2, fmt.Sprint(lastAlive())
	})
	// Another host on the storage network cannot reach the attached
	// volume (the stack's only volume: shelf 2, slot 0).
	conn, err := aoe.Listen(st.storage.link(t))
	if err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if in, err := aoe.Dial(dctx, conn, 2, 0); err == nil {
		in.Close()
		t.Error("a MAC the volume is not attached to reached it")
	} else {
		conn.Close()
	}
	cancel()
	if _, err := cli.try(t, "ec2", "delete-volume", "--volume-id", v.VolumeID); err == nil || !strings.Contains(err.Error(), "VolumeInUse") {
		t.Errorf("delete-volume of an attached volume: %v", err)
	}
	cli.run(t, "ec2", "detach-volume", "--volume-id", v.VolumeID)
	cli.run(t, "ec2", "wait", "volume-available", "--volume-ids", v.VolumeID)
	attach(ids[1], v.VolumeID)
	if found := line(ids[1], v.VolumeID, "found"); found != wrote {
		t.Errorf("the second instance read %s, the first wrote %s", found, wrote)
	}

	// A snapshot of the attached volume, and a volume from it: the
	// pattern is there, read from walrus as the guest reads it.
	var snap struct {
		SnapshotID string `json:"SnapshotId"`
		State      string `json:"State"`
	}
	cli.json(t, &snap, "ec2", "create-snapshot", "--volume-id", v.VolumeID, "--description", "e2e pattern")
	if snap.State != "pending" {
		t.Errorf("create-snapshot: %+v", snap)
	}
	cli.run(t, "ec2", "wait", "snapshot-completed", "--snapshot-ids", snap.SnapshotID)
	var restored struct {
		VolumeID   string `json:"VolumeId"`
		SnapshotID string `json:"SnapshotId"`
		Size       int    `json:"Size"`
	}
	cli.json(t, &restored, "ec2", "create-volume", "--availability-zone", "us-east-1a", "--snapshot-id", snap.SnapshotID)
	if restored.SnapshotID != snap.SnapshotID || restored.Size != 1 {
		t.Errorf("create-volume from the snapshot: %+v", restored)
	}
	cli.run(t, "ec2", "wait", "volume-available", "--volume-ids", restored.VolumeID)
	cli.run(t, "ec2", "detach-volume", "--volume-id", v.VolumeID)
	cli.run(t, "ec2", "wait", "volume-available", "--volume-ids", v.VolumeID)
	attach(ids[0], restored.VolumeID)
	if found := line(ids[0], restored.VolumeID, "found"); found != wrote {
		t.Errorf("the volume from the snapshot reads %s, the first instance wrote %s", found, wrote)
	}
	cli.run(t, "ec2", "delete-volume", "--volume-id", v.VolumeID)
	cli.run(t, "ec2", "detach-volume", "--volume-id", restored.VolumeID)
	cli.run(t, "ec2", "wait", "volume-available", "--volume-ids", restored.VolumeID)
	cli.run(t, "ec2", "delete-volume", "--volume-id", restored.VolumeID)
	cli.run(t, "ec2", "delete-snapshot", "--snapshot-id", snap.SnapshotID)
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
