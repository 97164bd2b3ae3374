//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// userDataProbe is a guest script that reads the metadata service with
// IMDSv1 and IMDSv2 (busybox wget cannot PUT, so the token request is
// raw HTTP through nc) and prints what it got on the console.
const userDataProbe = `#!/bin/sh
md=http://169.254.169.254/latest
v1=$(wget -q -O - $md/meta-data/instance-id)
tok=$(printf 'PUT /latest/api/token HTTP/1.0\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n' | nc 169.254.169.254 80 | tail -n 1)
v2=$(wget -q -O - --header "X-aws-ec2-metadata-token: $tok" $md/meta-data/instance-id)
ip=$(wget -q -O - --header "X-aws-ec2-metadata-token: $tok" $md/meta-data/local-ipv4)
echo "koala-e2e-userdata v1=$v1 v2=$v2 ip=$ip"
`

// startNetStack starts a stack with one MANAGED-NOVLAN cluster of one
// libvirt node, its subnet 10.<base>.0.0/24, a client host on the public
// network 198.18.<base>.0/24, and the aws CLI as its user.
func startNetStack(t *testing.T, base int) (*instStack, *awsCLI) {
	t.Helper()
	return startModeStack(t, "MANAGED-NOVLAN", base)
}

// startModeStack is startNetStack with the cluster in network mode mode.
func startModeStack(t *testing.T, mode string, base int) (*instStack, *awsCLI) {
	t.Helper()
	require(t, fileAt(awsBin), onPath("virsh"), onPath("qemu-img"), onPath("dnsmasq"), onPath("nft"), libvirtUp())
	st := startInstStack(t, stackSpec{
		driver: "libvirt", policies: []string{"GREEDY"}, nodes: 1, network: mode, subnetBase: base,
		capacity: capacityConfig{Cores: 4, MemoryMiB: 1024, DiskGiB: 20}, clientHost: true,
	})
	return st, st.cli(t)
}

// TestNetworkMetadata boots the demo image in a MANAGED-NOVLAN cluster:
// the guest gets by DHCP the private IP DescribeInstances shows, reads
// its instance ID from 169.254.169.254 with IMDSv2 (IMDSv1 is refused:
// the instance requires tokens; the spoofing guest below reads its own
// with IMDSv1), and runs its user-data, which prints a marker on the
// console.
func TestNetworkMetadata(t *testing.T) {
	t.Parallel()
	st, cli := startNetStack(t, 140)
	ins := st.runInstances(t, "--instance-type", "m1.small", "--user-data", userDataProbe,
		"--metadata-options", "HttpTokens=required,HttpEndpoint=enabled")
	id := ins[0].InstanceID
	t.Cleanup(func() { _, _ = cli.try(t, "ec2", "terminate-instances", "--instance-ids", id) })
	cli.run(t, "ec2", "wait", "instance-running", "--instance-ids", id)
	ip := st.describe(t, id)[id].PrivateIPAddress
	if !strings.HasPrefix(ip, st.clusters[0].subnet+".") {
		t.Fatalf("private IP %q, want one in %s.0/24", ip, st.clusters[0].subnet)
	}
	up := "koala-demo: instance " + id + " is up ip=" + ip
	probe := "koala-e2e-userdata v1= v2=" + id + " ip=" + ip
	var opts struct {
		Reservations []struct {
			Instances []struct {
				MetadataOptions struct{ HttpTokens string } `json:"MetadataOptions"`
			} `json:"Instances"`
		} `json:"Reservations"`
	}
	cli.json(t, &opts, "ec2", "describe-instances", "--instance-ids", id)
	if got := opts.Reservations[0].Instances[0].MetadataOptions.HttpTokens; got != "required" {
		t.Errorf("describe-instances shows HttpTokens %q, want required", got)
	}
	waitFor(t, 2*time.Minute, "the guest's lines", func() (bool, string) {
		o, err := cli.try(t, "ec2", "get-console-output", "--instance-id", id, "--output", "text", "--query", "Output")
		return err == nil && strings.Contains(o, up) && strings.Contains(o, probe), o
	})

	// The node reports the guest's host device and the filter holds its
	// port: frames from it must carry the guest's MAC and address.
	waitFor(t, 30*time.Second, "the guest's port in the packet filter", func() (bool, string) {
		tap := guestTap(t, id)
		rs, _ := exec.Command("nft", "list", "ruleset").CombinedOutput()
		return tap != "" && strings.Contains(string(rs), fmt.Sprintf("%q . %s", tap, ip)), "tap " + tap + "\n" + string(rs)
	})

	// A second guest changes its own address, to a free one of the subnet
	// and then to the first guest's, and asks the metadata service who it
	// is: the filter drops what it sends, so it gets nothing, never
	// another instance's ID.
	spoofer := st.runInstances(t, "--instance-type", "m1.small", "--user-data", spoofScript(st.clusters[0].subnet, ip))[0].InstanceID
	t.Cleanup(func() { _, _ = cli.try(t, "ec2", "terminate-instances", "--instance-ids", spoofer) })
	var o string
	waitFor(t, 3*time.Minute, "the spoofing guest's lines", func() (bool, string) {
		o, _ = cli.try(t, "ec2", "get-console-output", "--instance-id", spoofer, "--output", "text", "--query", "Output")
		return strings.Contains(o, "koala-spoof-as-other got="), o
	})
	// (The console text may come with its line ends escaped.)
	if m := regexp.MustCompile(`koala-spoof own=(i-[0-9a-f]+)`).FindStringSubmatch(o); m == nil || m[1] != spoofer {
		t.Errorf("the spoofing guest could not read its own ID before spoofing (%q):\n%s", m, o)
	}
	got := regexp.MustCompile(`koala-spoof(-as-other)? got=([^\s\\"]*)`).FindAllStringSubmatch(o, -1)
	if len(got) != 2 {
		t.Errorf("want two spoofing attempts on the console, got %q:\n%s", got, o)
	}
	for _, m := range got {
		if m[2] != "" {
			t.Errorf("a spoofing guest read the metadata service: %q", m[0])
		}
	}
}

// spoofScript is a guest script that reads its own instance ID, then
// moves to subnet.200 and to other, and after each move asks for the
// instance ID again, printing what it got on the console.
func spoofScript(subnet, other string) string {
	return fmt.Sprintf(`#!/bin/sh
md=http://169.254.169.254/latest/meta-data/instance-id
ask() { rm -f /tmp/md; (wget -q -O /tmp/md $md >/dev/null 2>&1 &); sleep 15; cat /tmp/md 2>/dev/null; }
move() { ip addr flush dev eth0; ip addr add $1/24 dev eth0; ip route add default via %[1]s.1; }
(
echo "koala-spoof own=$(wget -q -O - $md)"
move %[1]s.200
echo "koala-spoof got=$(ask)"
move %[2]s
echo "koala-spoof-as-other got=$(ask)"
) >/dev/console 2>&1 &
`, subnet, other)
}

// guestTap returns the host device of a guest's NIC, per libvirt.
func guestTap(t *testing.T, id string) string {
	t.Helper()
	out, err := exec.Command("virsh", "-c", "qemu:///system", "domiflist", id).Output()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && strings.Contains(f[4], ":") {
			return f[0]
		}
	}
	return ""
}

// userDataService serves a line on TCP 8080 for ever (busybox nc serves
// one connection per run).
const userDataService = `#!/bin/sh
(while true; do echo koala-sg-hello | nc -l -p 8080; done) >/dev/null 2>&1 &
`

// TestNetworkSecurityGroups checks that a guest's TCP service is
// unreachable from the client host until a rule opens its port,
// reachable after, and unreachable again after the rule is revoked.
func TestNetworkSecurityGroups(t *testing.T) {
	t.Parallel()
	st, cli := startNetStack(t, 150)
	var g struct {
		GroupID string `json:"GroupId"`
	}
	cli.json(t, &g, "ec2", "create-security-group", "--group-name", "web", "--description", "the web tier")
	ins := st.runInstances(t, "--instance-type", "m1.small", "--security-group-ids", g.GroupID, "--user-data", userDataService)
	id := ins[0].InstanceID
	t.Cleanup(func() { _, _ = cli.try(t, "ec2", "terminate-instances", "--instance-ids", id) })
	cli.run(t, "ec2", "wait", "instance-running", "--instance-ids", id)
	ip := st.describe(t, id)[id].PrivateIPAddress
	waitFor(t, 2*time.Minute, "the guest is up", func() (bool, string) {
		o, err := cli.try(t, "ec2", "get-console-output", "--instance-id", id, "--output", "text", "--query", "Output")
		return err == nil && strings.Contains(o, "koala-demo: instance "+id+" is up ip="+ip), o
	})
	client := st.clusters[0].client
	dialLine := func(addr string) (string, error) { return client.dialLine(t, addr) }
	addr := net.JoinHostPort(ip, "8080")
	if line, err := dialLine(addr); err == nil {
		t.Fatalf("port 8080 answered %q before any rule allowed it", line)
	}
	cli.run(t, "ec2", "authorize-security-group-ingress", "--group-id", g.GroupID, "--protocol", "tcp", "--port", "8080", "--cidr", "0.0.0.0/0")
	began := time.Now()
	waitFor(t, 30*time.Second, "port 8080 open after authorize", func() (bool, string) {
		line, err := dialLine(addr)
		return err == nil && line == "koala-sg-hello", fmt.Sprint(line, err)
	})
	t.Logf("reachable %s after authorize-security-group-ingress returned", time.Since(began).Round(time.Millisecond))
	// Restarts, even by kill -9, leave reachability as the stored state says.
	restartAll := func(t *testing.T) {
		t.Helper()
		for _, d := range st.netDaemons() {
			d.kill9()
			if err := d.start(); err != nil {
				t.Fatalf("restart %s: %v", d.name, err)
			}
		}
	}
	restartAll(t)
	time.Sleep(2 * time.Second) // let every daemon re-apply what it stores
	if line, err := dialLine(addr); err != nil || line != "koala-sg-hello" {
		t.Errorf("after kill -9 and restart of clusterctl, cloudctl and nodectl: %q, %v; want the port still open", line, err)
	}
	cli.run(t, "ec2", "revoke-security-group-ingress", "--group-id", g.GroupID, "--protocol", "tcp", "--port", "8080", "--cidr", "0.0.0.0/0")
	waitFor(t, 30*time.Second, "port 8080 closed after revoke", func() (bool, string) {
		line, err := dialLine(addr)
		return err != nil, fmt.Sprint(line, err)
	})
	restartAll(t)
	time.Sleep(2 * time.Second)
	if line, err := dialLine(addr); err == nil {
		t.Errorf("after revoke and restarts the port answered %q; want it closed", line)
	}
}

// TestNetworkSourceGroups checks that two instances in different groups
// cannot reach each other until a source-group rule lets one group in,
// in MANAGED-NOVLAN mode (one layer 2 for all, groups enforced on the
// bridge) and in MANAGED mode (a layer 2 segment per group, routed
// through the host).
func TestNetworkSourceGroups(t *testing.T) {
	t.Parallel()
	for mode, base := range map[string]int{"MANAGED-NOVLAN": 160, "MANAGED": 165} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testSourceGroups(t, mode, base)
		})
	}
}

func testSourceGroups(t *testing.T, mode string, base int) {
	st, cli := startModeStack(t, mode, base)
	var web, app struct {
		GroupID string `json:"GroupId"`
	}
	cli.json(t, &web, "ec2", "create-security-group", "--group-name", "web", "--description", "servers")
	cli.json(t, &app, "ec2", "create-security-group", "--group-name", "app", "--description", "clients")
	a := st.runInstances(t, "--security-group-ids", web.GroupID, "--user-data", userDataService)[0]
	t.Cleanup(func() { _, _ = cli.try(t, "ec2", "terminate-instances", "--instance-ids", a.InstanceID) })
	ipA := st.describe(t, a.InstanceID)[a.InstanceID].PrivateIPAddress
	probe := fmt.Sprintf(`#!/bin/sh
(i=0; while [ $i -lt 300 ]; do
  if echo | nc -w 2 %s 8080 | grep -q koala-sg-hello; then echo "koala-probe ok"; else echo "koala-probe fail"; fi
  i=$((i+1)); sleep 1
done) >/dev/console 2>&1 &
`, ipA)
	b := st.runInstances(t, "--security-group-ids", app.GroupID, "--user-data", probe)[0]
	t.Cleanup(func() { _, _ = cli.try(t, "ec2", "terminate-instances", "--instance-ids", b.InstanceID) })
	cli.run(t, "ec2", "wait", "instance-running", "--instance-ids", a.InstanceID, b.InstanceID)
	console := func() string {
		o, _ := cli.try(t, "ec2", "get-console-output", "--instance-id", b.InstanceID, "--output", "text", "--query", "Output")
		return o
	}
	waitFor(t, 2*time.Minute, "B probing A and failing", func() (bool, string) {
		o := console()
		return strings.Count(o, "koala-probe fail") >= 3, o
	})
	if o := console(); strings.Contains(o, "koala-probe ok") {
		t.Fatalf("B reached A before any rule allowed it:\n%s", o)
	}
	cli.run(t, "ec2", "authorize-security-group-ingress", "--group-id", web.GroupID,
		"--ip-permissions", fmt.Sprintf("IpProtocol=tcp,FromPort=8080,ToPort=8080,UserIdGroupPairs=[{GroupId=%s}]", app.GroupID))
	waitFor(t, time.Minute, "B reaching A after the source-group rule", func() (bool, string) {
		o := console()
		return strings.Contains(o, "koala-probe ok"), o
	})
}

// netDaemons are the daemons that keep a one-cluster stack's network:
// clusterctl, cloudctl and the node.
func (st *instStack) netDaemons() []*daemon {
	return []*daemon{st.clusters[0].daemon, st.c.daemon, st.clusters[0].nodes[0].daemon}
}

// TestNetworkElasticIP checks an elastic IP end to end: the client host
// reaches a guest's service at the address once it is associated, and
// not before or after; the guest is seen from the client host as the
// address and reads it from the metadata service; restarting each daemon
// (kill -9) leaves reachability as stored.
func TestNetworkElasticIP(t *testing.T) {
	t.Parallel()
	st, cli := startNetStack(t, 170)
	client := st.clusters[0].client
	seen := client.listen(t, 9000)
	var g struct {
		GroupID string `json:"GroupId"`
	}
	cli.json(t, &g, "ec2", "create-security-group", "--group-name", "web", "--description", "reached at an elastic IP")
	cli.run(t, "ec2", "authorize-security-group-ingress", "--group-id", g.GroupID, "--protocol", "tcp", "--port", "8080", "--cidr", "0.0.0.0/0")
	userData := fmt.Sprintf(`#!/bin/sh
(while true; do echo koala-sg-hello | nc -l -p 8080; done) >/dev/null 2>&1 &
(last=; while true; do
  echo | nc -w 2 %s 9000 >/dev/null 2>&1
  pub=$(wget -q -O - http://169.254.169.254/latest/meta-data/public-ipv4 2>/dev/null)
  if [ "$pub" != "$last" ]; then echo "koala-public-ipv4=$pub."; last=$pub; fi
  sleep 1
done) >/dev/console 2>&1 &
`, client.IP())
	id := st.runInstances(t, "--security-group-ids", g.GroupID, "--user-data", userData)[0].InstanceID
	t.Cleanup(func() { _, _ = cli.try(t, "ec2", "terminate-instances", "--instance-ids", id) })
	cli.run(t, "ec2", "wait", "instance-running", "--instance-ids", id)
	private := st.describe(t, id)[id].PrivateIPAddress
	console := func() string {
		o, _ := cli.try(t, "ec2", "get-console-output", "--instance-id", id, "--output", "text", "--query", "Output")
		return o
	}
	waitFor(t, 2*time.Minute, "the guest is up", func() (bool, string) {
		o := console()
		return strings.Contains(o, "koala-demo: instance "+id+" is up ip="+private), o
	})
	waitFor(t, 30*time.Second, "the client host reaching the guest's private address", func() (bool, string) {
		line, err := client.dialLine(t, net.JoinHostPort(private, "8080"))
		return err == nil && line == "koala-sg-hello", fmt.Sprint(line, err)
	})

	var alloc struct {
		PublicIP     string `json:"PublicIp"`
		AllocationID string `json:"AllocationId"`
	}
	cli.json(t, &alloc, "ec2", "allocate-address", "--domain", "vpc")
	if !strings.HasPrefix(alloc.PublicIP, client.prefix+".") {
		t.Fatalf("allocated %q, want an address of the pool %s", alloc.PublicIP, client.pool())
	}
	public := net.JoinHostPort(alloc.PublicIP, "8080")
	if line, err := client.dialLine(t, public); err == nil {
		t.Fatalf("the elastic IP answered %q before it was associated", line)
	}
	var assoc struct {
		AssociationID string `json:"AssociationId"`
	}
	cli.json(t, &assoc, "ec2", "associate-address", "--allocation-id", alloc.AllocationID, "--instance-id", id)
	began := time.Now()
	reachable := func(what string) {
		t.Helper()
		waitFor(t, 30*time.Second, what, func() (bool, string) {
			line, err := client.dialLine(t, public)
			return err == nil && line == "koala-sg-hello", fmt.Sprint(line, err)
		})
	}
	reachable("the guest at its elastic IP")
	t.Logf("reachable at %s %s after associate-address returned", alloc.PublicIP, time.Since(began).Round(time.Millisecond))
	if got := st.describe(t, id)[id].PublicIPAddress; got != alloc.PublicIP {
		t.Errorf("describe-instances shows public IP %q, want %q", got, alloc.PublicIP)
	}
	var addrs struct {
		Addresses []struct {
			InstanceID       string `json:"InstanceId"`
			AssociationID    string `json:"AssociationId"`
			PrivateIPAddress string `json:"PrivateIpAddress"`
		} `json:"Addresses"`
	}
	cli.json(t, &addrs, "ec2", "describe-addresses", "--filters", "Name=instance-id,Values="+id)
	if len(addrs.Addresses) != 1 || addrs.Addresses[0].AssociationID != assoc.AssociationID || addrs.Addresses[0].PrivateIPAddress != private {
		t.Errorf("describe-addresses by instance: %+v", addrs)
	}
	waitFor(t, 30*time.Second, "the client host seeing the guest come from its elastic IP", func() (bool, string) {
		return seen.from(alloc.PublicIP)
	})
	waitFor(t, 30*time.Second, "the guest reading its public-ipv4", func() (bool, string) {
		o := console()
		return strings.Contains(o, "koala-public-ipv4="+alloc.PublicIP+"."), o
	})

	// Each daemon, killed and restarted, leaves the address in place.
	for _, d := range st.netDaemons() {
		d.kill9()
		if err := d.start(); err != nil {
			t.Fatalf("restart %s: %v", d.name, err)
		}
		reachable("the elastic IP after kill -9 and restart of " + d.name)
	}

	cli.run(t, "ec2", "disassociate-address", "--association-id", assoc.AssociationID)
	waitFor(t, 30*time.Second, "the elastic IP unreachable after disassociate", func() (bool, string) {
		line, err := client.dialLine(t, public)
		return err != nil && !client.holds(alloc.PublicIP), fmt.Sprint(line, err)
	})
	if got := st.describe(t, id)[id].PublicIPAddress; got != "" {
		t.Errorf("describe-instances shows public IP %q after disassociate", got)
	}
	for _, d := range st.netDaemons() {
		d.kill9()
		if err := d.start(); err != nil {
			t.Fatalf("restart %s: %v", d.name, err)
		}
	}
	time.Sleep(2 * time.Second) // let every daemon re-apply what it stores
	if line, err := client.dialLine(t, public); err == nil {
		t.Errorf("after disassociate and restarts the elastic IP answered %q", line)
	}
	cli.run(t, "ec2", "release-address", "--allocation-id", alloc.AllocationID)
}

// TestNetworkStatic boots a guest in a STATIC cluster: it gets by DHCP
// the first address of the administrator's MAC map, with the map's MAC,
// as DescribeInstances and the metadata service report it; the map's
// size bounds how many instances run (InsufficientFreeAddressesInSubnet,
// and the refused instance is gone).
func TestNetworkStatic(t *testing.T) {
	t.Parallel()
	st, cli := startModeStack(t, "STATIC", 180)
	ins := st.runInstances(t, "--count", "2", "--user-data", userDataProbe)
	for _, in := range ins {
		t.Cleanup(func() { _, _ = cli.try(t, "ec2", "terminate-instances", "--instance-ids", in.InstanceID) })
	}
	id := ins[0].InstanceID
	cli.run(t, "ec2", "wait", "instance-running", "--instance-ids", id)
	got := map[string]bool{}
	for _, in := range st.describe(t, ins[0].InstanceID, ins[1].InstanceID) {
		got[in.PrivateIPAddress] = true
	}
	if !got["10.180.0.50"] || !got["10.180.0.51"] {
		t.Fatalf("private IPs %v, want the map's 10.180.0.50 and .51", got)
	}
	ip := st.describe(t, id)[id].PrivateIPAddress
	probe := "koala-e2e-userdata v1=" + id + " v2=" + id + " ip=" + ip
	waitFor(t, 2*time.Minute, "the guest's lines", func() (bool, string) {
		o, err := cli.try(t, "ec2", "get-console-output", "--instance-id", id, "--output", "text", "--query", "Output")
		return err == nil && strings.Contains(o, "koala-demo: instance "+id+" is up ip="+ip) && strings.Contains(o, probe), o
	})
	out, err := cli.try(t, "ec2", "run-instances", "--image-id", st.images.machine)
	if err == nil || !strings.Contains(err.Error()+out, "InsufficientFreeAddressesInSubnet") {
		t.Errorf("a third instance in a map of two: %v\n%s", err, out)
	}
	if n := len(st.describe(t)); n != 2 {
		t.Errorf("%d instances after the refused run, want 2", n)
	}
}
