//go:build e2e

package e2e

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestInstances boots the demo image on real libvirt guests through the
// whole stack: two clusters (GREEDY and ROUNDROBIN) of two nodes each,
// driven by the aws CLI.
func TestInstances(t *testing.T) {
	t.Parallel()
	require(t, fileAt(awsBin), onPath("virsh"), onPath("qemu-img"), onPath("qemu-system-x86_64"), libvirtUp())
	began := time.Now()
	st := startInstStack(t, stackSpec{
		driver: "libvirt", policies: []string{"GREEDY", "ROUNDROBIN"}, nodes: 2,
		capacity: capacityConfig{Cores: 2, MemoryMiB: 2048, DiskGiB: 40},
	})
	t.Logf("stack up with the demo image installed in %s", time.Since(began).Round(time.Millisecond))
	cli := st.cli(t)
	var launched []string
	t.Cleanup(func() {
		// Whatever happened, leave no guest running.
		if len(launched) > 0 {
			_, _ = cli.try(t, append([]string{"ec2", "terminate-instances", "--instance-ids"}, launched...)...)
		}
	})
	ids := func(ins []cliInstance) []string {
		var out []string
		for _, in := range ins {
			out = append(out, in.InstanceID)
		}
		launched = append(launched, out...)
		return out
	}
	waitRunning := func(t *testing.T, ids []string) {
		t.Helper()
		began := time.Now()
		cli.run(t, append([]string{"ec2", "wait", "instance-running", "--instance-ids"}, ids...)...)
		t.Logf("%d instance(s) running %s after the wait began", len(ids), time.Since(began).Round(time.Millisecond))
	}
	consoleLine := func(t *testing.T, id string) {
		t.Helper()
		want := "koala-demo: instance " + id + " is up"
		waitFor(t, 2*time.Minute, "console of "+id, func() (bool, string) {
			out, err := cli.try(t, "ec2", "get-console-output", "--instance-id", id, "--output", "text", "--query", "Output")
			return err == nil && strings.Contains(out, want), out
		})
	}

	var greedy []string
	t.Run("run three in the GREEDY zone", func(t *testing.T) {
		ins := st.runInstances(t, "--count", "3", "--instance-type", "m1.small", "--placement", "AvailabilityZone=us-east-1a")
		if len(ins) != 3 {
			t.Fatalf("run-instances --count 3 started %d", len(ins))
		}
		greedy = ids(ins)
		for _, in := range ins {
			if in.State.Name != "pending" || !strings.HasPrefix(in.InstanceID, "i-") || len(in.InstanceID) != 19 {
				t.Errorf("new instance %s", jsonString(in))
			}
		}
		waitRunning(t, greedy)
		got := st.describe(t, greedy...)
		perNode := map[string]int{}
		for _, id := range greedy {
			in := got[id]
			if in.Placement.AvailabilityZone != "us-east-1a" || !strings.HasPrefix(in.PrivateIPAddress, "10.100.0.") ||
				in.PrivateDNSName != "ip-"+strings.ReplaceAll(in.PrivateIPAddress, ".", "-")+".ec2.internal" ||
				in.KernelID != st.images.kernel || in.RamdiskID != st.images.ramdisk {
				t.Errorf("described %s", jsonString(in))
			}
			perNode[st.nodeOf(id)]++
		}
		// GREEDY fills the first node (two m1.small on two cores) first.
		a1, a2 := st.clusters[0].nodes[0].name, st.clusters[0].nodes[1].name
		if perNode[a1] != 2 || perNode[a2] != 1 {
			t.Errorf("GREEDY placed %v, want %s full (2) and 1 on %s", perNode, a1, a2)
		}
		consoleLine(t, greedy[0])
	})

	var spread []string
	t.Run("most-free picks the emptier cluster; ROUNDROBIN alternates", func(t *testing.T) {
		a := ids(st.runInstances(t, "--instance-type", "m1.small"))
		b := ids(st.runInstances(t, "--instance-type", "m1.small"))
		spread = append(a, b...)
		got := st.describe(t, spread...)
		for _, id := range spread {
			if z := got[id].Placement.AvailabilityZone; z != "us-east-1b" {
				t.Errorf("%s went to %s, want us-east-1b, the emptier zone", id, z)
			}
		}
		waitRunning(t, spread)
		if na, nb := st.nodeOf(a[0]), st.nodeOf(b[0]); na == nb || na == "" || nb == "" {
			t.Errorf("ROUNDROBIN put both on %q and %q, want two nodes", na, nb)
		}
	})

	t.Run("capacity", func(t *testing.T) {
		// Zone a has one m1.small slot left.
		wantCLIError(t, cli, "InsufficientInstanceCapacity", "ec2", "run-instances", "--image-id", st.images.machine,
			"--count", "2", "--placement", "AvailabilityZone=us-east-1a")
		wantCLIError(t, cli, "InsufficientInstanceCapacity", "ec2", "run-instances", "--image-id", st.images.machine,
			"--instance-type", "c1.xlarge")
		partial := ids(st.runInstances(t, "--count", "1:3", "--placement", "AvailabilityZone=us-east-1a"))
		if len(partial) != 1 {
			t.Errorf("--count 1:3 with one slot left started %d, want 1", len(partial))
		}
		cli.run(t, append([]string{"ec2", "terminate-instances", "--instance-ids"}, partial...)...)
	})

	t.Run("terminate leaves no domain and no disk", func(t *testing.T) {
		all := append(slices.Clone(greedy), spread...)
		var out struct {
			TerminatingInstances []struct {
				InstanceID    string `json:"InstanceId"`
				CurrentState  struct{ Name string }
				PreviousState struct{ Name string }
			}
		}
		cli.json(t, &out, append([]string{"ec2", "terminate-instances", "--instance-ids"}, all...)...)
		for _, c := range out.TerminatingInstances {
			if c.PreviousState.Name != "running" || (c.CurrentState.Name != "shutting-down" && c.CurrentState.Name != "terminated") {
				t.Errorf("terminate %s: %s -> %s", c.InstanceID, c.PreviousState.Name, c.CurrentState.Name)
			}
		}
		cli.run(t, append([]string{"ec2", "wait", "instance-terminated", "--instance-ids"}, launched...)...)
		st.wantGone(t, launched)
	})

	t.Run("crashes converge", func(t *testing.T) { st.crashes(t, &launched) })
}

// wantGone checks that no domain of ids exists and that their nodes hold
// no disks of them.
func (st *instStack) wantGone(t *testing.T, ids []string) {
	t.Helper()
	waitFor(t, time.Minute, "domains and disks gone", func() (bool, string) {
		doms := domains(t)
		for _, id := range ids {
			if doms[id] {
				return false, "domain " + id + " exists"
			}
			for _, cl := range st.clusters {
				for _, n := range cl.nodes {
					disks, _ := filepath.Glob(filepath.Join(n.dataDir, "instances", id, "*.qcow2"))
					if len(disks) > 0 {
						return false, "disks left: " + strings.Join(disks, " ")
					}
				}
			}
		}
		return true, ""
	})
}

// crashes kills each daemon with SIGKILL during launches and
// terminations; after each restart every instance converges and nothing
// is orphaned.
func (st *instStack) crashes(t *testing.T, launched *[]string) {
	cli := st.cli(t)
	a := st.clusters[0]
	run1 := func(t *testing.T) string {
		t.Helper()
		ins := st.runInstances(t, "--placement", "AvailabilityZone=us-east-1a")
		if len(ins) != 1 {
			t.Fatalf("run-instances started %d", len(ins))
		}
		*launched = append(*launched, ins[0].InstanceID)
		return ins[0].InstanceID
	}
	terminate := func(t *testing.T, id string) {
		t.Helper()
		cli.run(t, "ec2", "terminate-instances", "--instance-ids", id)
	}
	waitState := func(t *testing.T, id, state string) {
		t.Helper()
		cli.run(t, "ec2", "wait", "instance-"+state, "--instance-ids", id)
	}
	for _, victim := range []struct {
		name string
		d    func() *daemon
	}{
		{"nodectl", func() *daemon { return a.nodes[0].daemon }},
		{"clusterctl", func() *daemon { return a.daemon }},
		{"cloudctl", func() *daemon { return st.c.daemon }},
	} {
		t.Run("kill -9 "+victim.name+" during a launch", func(t *testing.T) {
			id := run1(t)
			d := victim.d()
			d.kill9()
			time.Sleep(500 * time.Millisecond)
			if err := d.start(); err != nil {
				t.Fatalf("restart %s: %v", victim.name, err)
			}
			waitState(t, id, "running")
			t.Run("and during its termination", func(t *testing.T) {
				terminate(t, id)
				d.kill9()
				if err := d.start(); err != nil {
					t.Fatalf("restart %s: %v", victim.name, err)
				}
				waitState(t, id, "terminated")
				st.wantGone(t, []string{id})
			})
		})
	}
	// Nothing of ours survives anywhere.
	st.wantGone(t, *launched)
	for _, cl := range st.clusters {
		for _, n := range cl.nodes {
			left, _ := filepath.Glob(filepath.Join(n.dataDir, "instances", "*", "*.qcow2"))
			if len(left) > 0 {
				t.Errorf("%s keeps disks: %v", n.name, left)
			}
		}
	}
}
