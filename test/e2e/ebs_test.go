//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/aoe"
	"github.com/koala-cloud/koala/pkg/api"
)

type ebsConfig struct {
	Listen               string `json:"listen"`
	DataDir              string `json:"data_dir"`
	Interface            string `json:"interface"`
	Shelf                int    `json:"shelf"`
	CloudctlURL          string `json:"cloudctl_url"`
	WalrusURL            string `json:"walrus_url"`
	ComponentCredentials string `json:"component_credentials"`
}

// ebsStack is cloudctl (for component keys), walrus (for snapshots), an
// ebs daemon on one end of a veth pair, and clients of ebs's and walrus's
// internal APIs; node is the other end, where an initiator stands in for
// a node.
type ebsStack struct {
	cloud   *cloudctl
	walrus  *walrus
	ebs     *daemon
	dataDir string
	node    string
	client  *api.Client
	chunks  *api.Client // walrus's
}

func startEBS(t *testing.T) *ebsStack {
	t.Helper()
	if os.Geteuid() != 0 {
		require(t, prereq{what: "root (veth links, AF_PACKET)", check: func() error { return fmt.Errorf("not root") }})
	}
	walrusPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	c := startCloudctl(t, withS3URL("http://"+net.JoinHostPort("127.0.0.1", walrusPort)))
	w := startStackWalrus(t, c, walrusPort)
	dir := t.TempDir()
	ebsKey, clientKey := filepath.Join(dir, "ebs-key.json"), filepath.Join(dir, "client-key.json")
	c.adminRun(t, []string{"component-key", "ebs"}, "-o", ebsKey)
	c.adminRun(t, []string{"component-key", "cloud-tester"}, "-o", clientKey)
	// Unique per test: tests run at once.
	seq := stackSeq.Add(1) % 100
	node, target := fmt.Sprintf("keb%d-%dn", os.Getpid()%100000, seq), fmt.Sprintf("keb%d-%dt", os.Getpid()%100000, seq)
	if out, err := exec.Command("ip", "link", "add", node, "type", "veth", "peer", "name", target).CombinedOutput(); err != nil {
		t.Fatalf("veth: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", node).Run() })
	for _, l := range []string{node, target} {
		if out, err := exec.Command("ip", "link", "set", l, "up").CombinedOutput(); err != nil {
			t.Fatalf("%s up: %v: %s", l, err, out)
		}
	}
	st := &ebsStack{cloud: c, walrus: w, dataDir: filepath.Join(dir, "data"), node: node}
	cfg := filepath.Join(dir, "ebs.json")
	st.ebs = newDaemon(t, "ebs", daemonBinary(t, "ebs"), filepath.Join(dir, "ebs.log"), "serve", "-config", cfg)
	st.ebs.startOnFreePort(func(int) error {
		return writeJSON(cfg, ebsConfig{Listen: st.ebs.addr, DataDir: st.dataDir, Interface: target, Shelf: 4,
			CloudctlURL: c.endpoint, WalrusURL: w.endpoint, ComponentCredentials: ebsKey})
	})
	cred, err := api.LoadCredentials(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	st.client = api.NewClient(st.ebs.endpoint, cred, 30*time.Second)
	st.chunks = api.NewClient(w.endpoint, cred, 30*time.Second)
	return st
}

// volume creates a volume on ebs and attaches it to an initiator of its
// own on the stack's node link (closed at the end of the test).
func (st *ebsStack) volume(t *testing.T, id string, req api.VolumeRequest) (api.Volume, *aoe.Initiator) {
	t.Helper()
	ctx := context.Background()
	v, err := st.client.CreateVolume(ctx, id, req)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := aoe.Listen(st.node) // an initiator owns its Conn
	if err != nil {
		t.Fatal(err)
	}
	if v, err = st.client.AllowVolume(ctx, v.ID, conn.HardwareAddr().String()); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	in, err := aoe.Dial(dctx, conn, v.Shelf, v.Slot)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return v, in
}

// block is the content of 64 KiB block i: its number, repeated.
func block(i int) []byte {
	b := make([]byte, 64<<10)
	for o := 0; o < len(b); o += 8 {
		binary.LittleEndian.PutUint64(b[o:], uint64(i)+1)
	}
	return b
}

// TestEBSKill9DuringWrites writes 64 KiB blocks to a volume with a flush
// after every eighth while ebs is killed with SIGKILL and restarted: the
// initiator retransmits across the restart, every block it was told was
// written and flushed is in the volume's file, and the volume is served
// again at the same address to the same MAC only.
func TestEBSKill9DuringWrites(t *testing.T) {
	t.Parallel()
	st := startEBS(t)
	ctx := context.Background()
	v, in := st.volume(t, "vol-0e2e0000000000001", api.VolumeRequest{SizeGiB: 1})

	const blocks = 160
	var flushed atomic.Int64 // blocks acknowledged as flushed
	errc := make(chan error, 1)
	go func() {
		for i := range blocks {
			if _, err := in.WriteAt(block(i), int64(i)*64<<10); err != nil {
				errc <- fmt.Errorf("block %d: %w", i, err)
				return
			}
			if i%8 == 7 {
				if err := in.Flush(ctx); err != nil {
					errc <- fmt.Errorf("flush after block %d: %w", i, err)
					return
				}
				flushed.Store(int64(i + 1))
			}
		}
		errc <- nil
	}()
	for flushed.Load() < 48 {
		time.Sleep(5 * time.Millisecond)
	}
	st.ebs.kill9()
	atKill := flushed.Load()
	if err := st.ebs.start(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("writing across the restart: %v", err)
	}
	t.Logf("%d blocks flushed when ebs was killed; all %d written after its restart", atKill, blocks)
	got := make([]byte, blocks*64<<10)
	if _, err := in.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	st.ebs.stop()
	f, err := os.Open(filepath.Join(st.dataDir, "volumes", v.ID+".img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	file := make([]byte, blocks*64<<10) // only what was written: the volume is 1 GiB
	if _, err := f.ReadAt(file, 0); err != nil {
		t.Fatal(err)
	}
	for i := range blocks {
		want := block(i)
		if !bytes.Equal(file[i*64<<10:(i+1)*64<<10], want) || !bytes.Equal(got[i*64<<10:(i+1)*64<<10], want) {
			t.Fatalf("block %d differs after the restart (flushed before the kill: %d)", i, atKill)
		}
	}
}

// TestEBSVolumesThroughEC2 creates, describes and deletes volumes with
// the aws CLI: cloudctl has the zone's ebs make and remove them.
func TestEBSVolumesThroughEC2(t *testing.T) {
	t.Parallel()
	require(t, fileAt(awsBin))
	st := startEBS(t)
	st.cloud.adminRun(t, []string{"cluster", "register", "us-east-1a", "http://127.0.0.1:1"})
	st.cloud.adminRun(t, []string{"cluster", "ebs", "us-east-1a", st.ebs.endpoint})
	cli := newAWSCLI(t, st.cloud.endpoint, st.cloud.createAccount(t, "vols"))
	var v struct {
		VolumeID string `json:"VolumeId"`
		State    string `json:"State"`
	}
	cli.json(t, &v, "ec2", "create-volume", "--availability-zone", "us-east-1a", "--size", "2",
		"--tag-specifications", "ResourceType=volume,Tags=[{Key=Name,Value=e2e}]")
	if v.State != "creating" {
		t.Fatalf("create-volume: %+v", v)
	}
	cli.run(t, "ec2", "wait", "volume-available", "--volume-ids", v.VolumeID)
	got, err := st.client.GetVolume(context.Background(), v.VolumeID)
	if err != nil || got.SizeGiB != 2 || got.Shelf != 4 {
		t.Fatalf("ebs has %+v, %v", got, err)
	}
	file := filepath.Join(st.dataDir, "volumes", v.VolumeID+".img")
	if fi, err := os.Stat(file); err != nil || fi.Size() != 2<<30 {
		t.Fatalf("volume file: %v %v", fi, err)
	}
	var d struct {
		Volumes []struct {
			VolumeID string `json:"VolumeId"`
			Size     int    `json:"Size"`
			State    string `json:"State"`
		} `json:"Volumes"`
	}
	cli.json(t, &d, "ec2", "describe-volumes", "--filters", "Name=tag:Name,Values=e2e")
	if len(d.Volumes) != 1 || d.Volumes[0].VolumeID != v.VolumeID || d.Volumes[0].Size != 2 || d.Volumes[0].State != "available" {
		t.Errorf("describe-volumes: %+v", d)
	}
	if _, err := cli.try(t, "ec2", "create-volume", "--availability-zone", "us-east-1z", "--size", "1"); err == nil ||
		!strings.Contains(err.Error(), "InvalidParameterValue") {
		t.Errorf("a zone without volumes: %v", err)
	}

	// Snapshots: private to their owner until shared.
	var snap struct {
		SnapshotID string `json:"SnapshotId"`
	}
	cli.json(t, &snap, "ec2", "create-snapshot", "--volume-id", v.VolumeID, "--description", "shared later",
		"--tag-specifications", "ResourceType=snapshot,Tags=[{Key=Name,Value=e2e-snap}]")
	cli.run(t, "ec2", "wait", "snapshot-completed", "--snapshot-ids", snap.SnapshotID)
	var ds struct {
		Snapshots []struct {
			SnapshotID  string `json:"SnapshotId"`
			VolumeID    string `json:"VolumeId"`
			VolumeSize  int    `json:"VolumeSize"`
			State       string `json:"State"`
			Progress    string `json:"Progress"`
			Description string `json:"Description"`
		} `json:"Snapshots"`
	}
	cli.json(t, &ds, "ec2", "describe-snapshots", "--owner-ids", "self", "--filters", "Name=tag:Name,Values=e2e-snap")
	if len(ds.Snapshots) != 1 || ds.Snapshots[0].SnapshotID != snap.SnapshotID || ds.Snapshots[0].VolumeSize != 2 ||
		ds.Snapshots[0].State != "completed" || ds.Snapshots[0].Progress != "100%" || ds.Snapshots[0].VolumeID != v.VolumeID {
		t.Errorf("describe-snapshots: %+v", ds)
	}
	other := st.cloud.createAccount(t, "vols-other")
	cli2 := newAWSCLI(t, st.cloud.endpoint, other)
	wantErr := func(code string, c *awsCLI, args ...string) {
		t.Helper()
		if _, err := c.try(t, args...); err == nil || !strings.Contains(err.Error(), code) {
			t.Errorf("%v: %v, want %s", args, err, code)
		}
	}
	wantErr("InvalidSnapshot.NotFound", cli2, "ec2", "describe-snapshots", "--snapshot-ids", snap.SnapshotID)
	wantErr("InvalidSnapshot.NotFound", cli2, "ec2", "create-volume", "--availability-zone", "us-east-1a", "--snapshot-id", snap.SnapshotID)
	cli.run(t, "ec2", "modify-snapshot-attribute", "--snapshot-id", snap.SnapshotID, "--attribute", "createVolumePermission",
		"--operation-type", "add", "--user-ids", other.AccountID)
	if out := cli.run(t, "ec2", "describe-snapshot-attribute", "--snapshot-id", snap.SnapshotID, "--attribute", "createVolumePermission",
		"--query", "CreateVolumePermissions[].UserId"); !strings.Contains(out, other.AccountID) {
		t.Errorf("describe-snapshot-attribute: %q", out)
	}
	if out := cli2.run(t, "ec2", "describe-snapshots", "--restorable-by-user-ids", "self", "--query", "Snapshots[].SnapshotId"); !strings.Contains(out, snap.SnapshotID) {
		t.Errorf("shared snapshot as its grantee sees it: %q", out)
	}
	wantErr("InvalidParameterValue", cli2, "ec2", "create-volume", "--availability-zone", "us-east-1a", "--snapshot-id", snap.SnapshotID, "--size", "1")
	var restored struct {
		VolumeID string `json:"VolumeId"`
	}
	cli2.json(t, &restored, "ec2", "create-volume", "--availability-zone", "us-east-1a", "--snapshot-id", snap.SnapshotID)
	cli2.run(t, "ec2", "wait", "volume-available", "--volume-ids", restored.VolumeID)
	if _, err := cli2.try(t, "ec2", "delete-snapshot", "--snapshot-id", snap.SnapshotID); err == nil {
		t.Error("the grantee deleted the owner's snapshot")
	}
	cli2.run(t, "ec2", "delete-volume", "--volume-id", restored.VolumeID)
	cli.run(t, "ec2", "delete-snapshot", "--snapshot-id", snap.SnapshotID)
	wantErr("InvalidSnapshot.NotFound", cli, "ec2", "describe-snapshots", "--snapshot-ids", snap.SnapshotID)
	waitFor(t, time.Minute, "walrus dropping the deleted snapshot", func() (bool, string) {
		_, err := st.chunks.SnapshotManifest(context.Background(), snap.SnapshotID)
		return errors.Is(err, api.ErrNotFound), fmt.Sprint(err)
	})

	cli.run(t, "ec2", "delete-volume", "--volume-id", v.VolumeID)
	cli.run(t, "ec2", "wait", "volume-deleted", "--volume-ids", v.VolumeID)
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("volume file after delete: %v", err)
	}
}

// TestEBSKill9DuringSnapshot kills ebs while it stores a snapshot in
// walrus: after the restart the snapshot is marked failed (walrus holds
// no manifest for it) or completed, the volume is intact, a new snapshot
// completes (storing again only what walrus lacks), and a volume created
// from it reads the same bytes.
func TestEBSKill9DuringSnapshot(t *testing.T) {
	t.Parallel()
	st := startEBS(t)
	ctx := context.Background()
	v, in := st.volume(t, "vol-0e2e0000000000002", api.VolumeRequest{SizeGiB: 1})
	const blocks = 96 * 16 // 96 MiB of distinct 64 KiB blocks
	for i := range blocks {
		if _, err := in.WriteAt(block(i), int64(i)*64<<10); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	const first, second = "snap-0e2e0000000000001", "snap-0e2e0000000000002"
	if _, err := st.client.CreateSnapshot(ctx, first, api.SnapshotRequest{VolumeID: v.ID}); err != nil {
		t.Fatal(err)
	}
	var (
		at  api.SnapshotJob
		err error
	)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if at, err = st.client.Snapshot(ctx, first); err != nil || at.State != api.SnapshotPending || at.ChunksStored >= 8 {
			break
		}
	}
	st.ebs.kill9()
	t.Logf("ebs killed with the snapshot %s at %d%% (%d chunks stored)", at.State, at.Progress, at.ChunksStored)
	if err := st.ebs.start(); err != nil {
		t.Fatal(err)
	}
	j, err := st.client.Snapshot(ctx, first)
	switch {
	case err != nil:
		t.Fatal(err)
	case j.State == api.SnapshotError:
		if _, err := st.chunks.SnapshotManifest(ctx, first); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("walrus holds a manifest of the failed snapshot: %v", err)
		}
	case j.State != api.SnapshotCompleted:
		t.Fatalf("after the restart the snapshot is %+v", j)
	}

	if _, err := st.client.CreateSnapshot(ctx, second, api.SnapshotRequest{VolumeID: v.ID}); err != nil {
		t.Fatal(err)
	}
	for j.ID != second || j.State == api.SnapshotPending {
		time.Sleep(20 * time.Millisecond)
		if j, err = st.client.Snapshot(ctx, second); err != nil {
			t.Fatal(err)
		}
	}
	if j.State != api.SnapshotCompleted {
		t.Fatalf("second snapshot: %+v", j)
	}
	m, err := st.chunks.SnapshotManifest(ctx, second)
	if err != nil || len(m.Chunks) != blocks/16 {
		t.Fatalf("manifest of %d chunks (%v), want %d", len(m.Chunks), err, blocks/16)
	}
	t.Logf("second snapshot stored %d of its %d chunks", j.ChunksStored, len(m.Chunks))

	w, restored := st.volume(t, "vol-0e2e0000000000003", api.VolumeRequest{SizeGiB: 1, SnapshotID: second})
	for vol, rd := range map[string]*aoe.Initiator{v.ID: in, w.ID: restored} {
		// A MiB at a time: the test process stays small, as the
		// peak-RSS checks of other tests' children need.
		got := make([]byte, 1<<20)
		for off := 0; off < blocks*64<<10; off += len(got) {
			if _, err := rd.ReadAt(got, int64(off)); err != nil {
				t.Fatal(err)
			}
			for i := off / (64 << 10); i < (off+len(got))/(64<<10); i++ {
				if o := i*64<<10 - off; !bytes.Equal(got[o:o+64<<10], block(i)) {
					t.Fatalf("%s: block %d differs", vol, i)
				}
			}
		}
	}
}
