//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
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

	"github.com/koala-cloud/koala/pkg/sigv4"
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
		// The daemons' default reconciliation and heartbeat periods.
		driver: "fake", policies: []string{"ROUNDROBIN"}, nodes: 4, maxInsts: 20000, poll: "5s",
		subnetBits: 16, // 10,000 instances need as many private addresses
		capacity:   capacityConfig{Cores: 100000, MemoryMiB: 100000 * 128, DiskGiB: 100000 * 2},
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
	// The same call as the server answers it: signed, over HTTP, the body
	// read and dropped, without the SDK's decoding of 14 MB of XML.
	raw := func() time.Duration {
		var ds []time.Duration
		body := "Action=DescribeInstances&Version=2016-11-15"
		for range 7 {
			rq, err := http.NewRequestWithContext(ctx, http.MethodPost, st.c.endpoint+"/", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			rq.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			if err := sigv4.Sign(rq, st.user.AccessKeyID, st.user.SecretAccessKey, "us-east-1", "ec2", "", time.Now()); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			resp, err := http.DefaultClient.Do(rq)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ds = append(ds, time.Since(t0))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("DescribeInstances: %s", resp.Status)
			}
		}
		p50, _, _ := quantiles(ds)
		return p50
	}
	served := raw()
	all, nAll := describe(&ec2.DescribeInstancesInput{})
	one, _ := describe(&ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("instance-type"), Values: []string{"c1.medium"}}}})
	page, _ := describe(&ec2.DescribeInstancesInput{MaxResults: aws.Int32(1000)})
	report += fmt.Sprintf("\n| DescribeInstances, %d instances in the account | median of 7 | target |\n|---|---|---|\n", nAll)
	report += fmt.Sprintf("| all of them, as served: signed HTTP POST, answer read and dropped | %s | < 200 ms |\n", ms(served))
	report += fmt.Sprintf("| all of them through aws-sdk-go-v2 (%d listed; includes the SDK decoding the XML) | %s | |\n", nAll, ms(all))
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
	report := "| libvirt launch of the demo image | control plane | image staging | guest boot to userspace networking | guest's DHCP and metadata waits | total |\n|---|---|---|---|---|---|\n"
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
		var accepted, defined, userspace, up time.Duration
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
				if b, err := os.ReadFile(filepath.Join(dir, "console.log")); err == nil {
					if userspace == 0 && strings.Contains(string(b), "udhcpc:") {
						userspace = el
					}
					if strings.Contains(string(b), "koala-demo: instance "+id+" is up") {
						up = el
					}
				}
			}
			if el > 3*time.Minute {
				t.Fatalf("%s not up after 3 minutes (accepted %s, defined %s)", id, accepted, defined)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if userspace == 0 {
			userspace = up
		}
		report += fmt.Sprintf("| %s | %s | %s | %s | %s | %s |\n", which, ms(accepted), ms(defined-accepted),
			ms(userspace-defined), ms(up-userspace), ms(up))
	}
	out, _ := exec.Command("sh", "-c", "grep -o 'domain_type=[a-z]*' "+n.logPath+" | head -1").Output()
	report += fmt.Sprintf("\n(Node: %s; a 13.5 MiB kernel, a 1.2 MiB ramdisk and a 32 MiB root image. Control plane: "+
		"RunInstances until the node has the instance's record; image staging: until the domain is defined (fetch, "+
		"verify and cache the images on a first launch, the qcow2 overlay and ephemeral disk); guest boot: until "+
		"the guest's init starts DHCP; then its DHCP attempts and metadata fetch time out, as nothing answers them "+
		"before the networking issue, and it prints its line.)\n", strings.TrimSpace(string(out)))
	benchReport(t, report)
}
