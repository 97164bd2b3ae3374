//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The instance benchmarks run only when KOALA_BENCH=1 (bench/instances.sh
// sets it); they print Markdown tables and, with BENCH_OUT, append them
// to that file.

func benchOnly(t *testing.T) {
	if os.Getenv("KOALA_BENCH") != "1" {
		t.Skip("a benchmark: KOALA_BENCH=1 (bench/instances.sh) runs it")
	}
}

func benchReport(t *testing.T, text string) {
	t.Log("\n" + text)
	if out := os.Getenv("BENCH_OUT"); out != "" {
		f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintln(f, text)
	}
}

func quantiles(ds []time.Duration) (p50, p90, most time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)*9/10], s[len(s)-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// waitRunningSDK polls DescribeInstances every 5 ms until id runs.
func waitRunningSDK(ctx context.Context, t *testing.T, c *ec2.Client, id string) {
	t.Helper()
	for {
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			t.Fatalf("DescribeInstances %s: %v", id, err)
		}
		if s := out.Reservations[0].Instances[0].State.Name; s == ec2types.InstanceStateNameRunning {
			return
		} else if s == ec2types.InstanceStateNameTerminated {
			t.Fatalf("%s terminated: %+v", id, out.Reservations[0].Instances[0].StateReason)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBenchFakeDriver measures the control plane with nodes that run the
// fake hypervisor: RunInstances to running, and DescribeInstances over
// 10,000 instances.
func TestBenchFakeDriver(t *testing.T) {
	benchOnly(t)
	st := startInstStack(t, stackSpec{
		driver: "fake", policies: []string{"ROUNDROBIN"}, nodes: 4, maxInsts: 20000,
		capacity: capacityConfig{Cores: 100000, MemoryMiB: 100000 * 128, DiskGiB: 100000 * 2},
	})
	ctx := t.Context()
	c := newEC2Client(st.c, st.user)
	run := func(n int32) []string {
		out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(st.images.machine),
			MinCount: aws.Int32(n), MaxCount: aws.Int32(n), InstanceType: ec2types.InstanceType("m1.small")})
		if err != nil {
			t.Fatalf("RunInstances: %v", err)
		}
		var ids []string
		for _, in := range out.Instances {
			ids = append(ids, aws.ToString(in.InstanceId))
		}
		return ids
	}

	// RunInstances to running, one instance at a time.
	var lat, call []time.Duration
	for range 30 {
		began := time.Now()
		id := run(1)[0]
		call = append(call, time.Since(began))
		waitRunningSDK(ctx, t, c, id)
		lat = append(lat, time.Since(began))
	}
	p50, p90, most := quantiles(lat)
	c50, c90, cmost := quantiles(call)
	report := "| fake driver, 4 nodes, one cluster | p50 | p90 | max | target |\n|---|---|---|---|---|\n"
	report += fmt.Sprintf("| RunInstances call (30 launches, one at a time) | %s | %s | %s | |\n", ms(c50), ms(c90), ms(cmost))
	report += fmt.Sprintf("| RunInstances to `running` seen by DescribeInstances | %s | %s | %s | < 1 s |\n", ms(p50), ms(p90), ms(most))

	// 10,000 instances, then DescribeInstances.
	began := time.Now()
	have := len(lat)
	for have < 10000 {
		n := min(500, 10000-have)
		have += len(run(int32(n)))
	}
	fill := time.Since(began)
	describe := func(in *ec2.DescribeInstancesInput) (time.Duration, int) {
		var ds []time.Duration
		n := 0
		for range 7 {
			t0 := time.Now()
			out, err := c.DescribeInstances(ctx, in)
			ds = append(ds, time.Since(t0))
			if err != nil {
				t.Fatalf("DescribeInstances: %v", err)
			}
			n = 0
			for _, r := range out.Reservations {
				n += len(r.Instances)
			}
		}
		p50, _, _ := quantiles(ds)
		return p50, n
	}
	all, nAll := describe(&ec2.DescribeInstancesInput{})
	one, _ := describe(&ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("instance-type"), Values: []string{"c1.medium"}}}})
	page, _ := describe(&ec2.DescribeInstancesInput{MaxResults: aws.Int32(1000)})
	report += fmt.Sprintf("\n| DescribeInstances, %d instances in the account | median of 7 | target |\n|---|---|---|\n", nAll)
	report += fmt.Sprintf("| all of them, one answer (%d listed) | %s | < 200 ms |\n", nAll, ms(all))
	report += fmt.Sprintf("| with a filter that matches none | %s | |\n", ms(one))
	report += fmt.Sprintf("| first page of 1,000 | %s | |\n", ms(page))
	report += fmt.Sprintf("\n(Launching the 10,000 in batches of 500 took %s.)\n", fill.Round(time.Millisecond))
	benchReport(t, report)
}

// TestBenchLibvirtLaunch times a real launch of the demo image, first
// with an empty image cache and then cached, split into control plane
// (RunInstances until the node has the instance), image staging (until
// the domain exists) and guest boot (until the guest's console line).
func TestBenchLibvirtLaunch(t *testing.T) {
	benchOnly(t)
	st := startInstStack(t, stackSpec{
		driver: "libvirt", policies: []string{"GREEDY"}, nodes: 1,
		capacity: capacityConfig{Cores: 4, MemoryMiB: 2048, DiskGiB: 40},
	})
	ctx := t.Context()
	c := newEC2Client(st.c, st.user)
	n := st.clusters[0].nodes[0]
	report := "| libvirt launch of the demo image | control plane | image staging | guest boot | total |\n|---|---|---|---|---|\n"
	var ids []string
	defer func() {
		if len(ids) > 0 {
			_, _ = c.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ids})
		}
	}()
	for _, which := range []string{"first (image cache empty)", "cached", "cached"} {
		began := time.Now()
		out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(st.images.machine),
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: ec2types.InstanceType("m1.small")})
		if err != nil {
			t.Fatalf("RunInstances: %v", err)
		}
		id := aws.ToString(out.Instances[0].InstanceId)
		ids = append(ids, id)
		dir := filepath.Join(n.dataDir, "instances", id)
		var accepted, defined, up time.Duration
		for up == 0 {
			el := time.Since(began)
			if accepted == 0 {
				if _, err := os.Stat(filepath.Join(dir, "instance.json")); err == nil {
					accepted = el
				}
			}
			if accepted != 0 && defined == 0 {
				if exec.Command("virsh", "-c", "qemu:///system", "domstate", id).Run() == nil {
					defined = el
				}
			}
			if defined != 0 {
				if b, err := os.ReadFile(filepath.Join(dir, "console.log")); err == nil && strings.Contains(string(b), "koala-demo: instance "+id+" is up") {
					up = el
				}
			}
			if el > 3*time.Minute {
				t.Fatalf("%s not up after 3 minutes (accepted %s, defined %s)", id, accepted, defined)
			}
			time.Sleep(5 * time.Millisecond)
		}
		report += fmt.Sprintf("| %s | %s | %s | %s | %s |\n", which, ms(accepted), ms(defined-accepted), ms(up-defined), ms(up))
	}
	out, _ := exec.Command("sh", "-c", "grep -o 'domain_type=[a-z]*' "+n.logPath+" | head -1").Output()
	report += fmt.Sprintf("\n(Node: %s; image sizes: kernel, ramdisk and a 32 MiB root image.)\n", strings.TrimSpace(string(out)))
	benchReport(t, report)
}
