package ec2query

import (
	"reflect"
	"strings"
	"testing"

	"github.com/koala-cloud/koala/internal/capture"
)

const capturedFile = "../../testdata/requests/captured.jsonl"

// capturedEC2 is what the EC2 Query requests in captured.jsonl carry, by
// line: the client, the action and version, and what a handler of the
// action reads from them.
var capturedEC2 = map[int]struct {
	client, action, version string
	check                   func(t *testing.T, p *Params)
}{
	1: {"ec2-api-tools", "DescribeInstances", "2013-02-01", noFilters},
	2: {"ec2-api-tools", "DescribeImages", "2013-02-01", func(t *testing.T, p *Params) {
		wantList(t, p, "Owner", "self")
	}},
	3: {"ec2-api-tools", "CreateKeyPair", "2013-02-01", func(t *testing.T, p *Params) {
		wantString(t, p, "KeyName", "mykey")
	}},
	4: {"ec2-api-tools", "AuthorizeSecurityGroupIngress", "2013-02-01", func(t *testing.T, p *Params) {
		wantString(t, p, "GroupName", "default")
		perms, err := p.Structs("IpPermissions")
		if err != nil || len(perms) != 1 {
			t.Fatalf("IpPermissions: %v, %v", perms, err)
		}
		perm := perms[0]
		wantString(t, perm, "IpProtocol", "tcp")
		for _, port := range []string{"FromPort", "ToPort"} {
			if n, err := perm.Int(port, -1); n != 22 || err != nil {
				t.Errorf("%s: %d, %v", port, n, err)
			}
		}
		ranges, err := perm.Structs("IpRanges")
		if err != nil || len(ranges) != 1 {
			t.Fatalf("IpRanges: %v, %v", ranges, err)
		}
		wantString(t, ranges[0], "CidrIp", "0.0.0.0/0")
	}},
	5: {"ec2-api-tools", "DescribeInstances", "2013-02-01", func(t *testing.T, p *Params) {
		wantFilters(t, p, []Filter{{"instance-state-name", []string{"running"}}, {"tag:Name", []string{"web*"}}})
	}},
	6: {"ec2-api-tools", "RunInstances", "2013-02-01", func(t *testing.T, p *Params) {
		wantString(t, p, "ImageId", "ami-12345678901234567")
		wantString(t, p, "InstanceType", "m1.small")
		wantString(t, p, "KeyName", "mykey")
		wantList(t, p, "SecurityGroupId", "default")
		for _, n := range []string{"MinCount", "MaxCount"} {
			if v, err := p.Int(n, 1); v != 2 || err != nil {
				t.Errorf("%s: %d, %v", n, v, err)
			}
		}
		for _, n := range []string{"EbsOptimized", "DisableApiTermination", "Monitoring.Enabled"} {
			if v, err := p.Bool(n); v || err != nil {
				t.Errorf("%s: %v, %v", n, v, err)
			}
		}
	}},
	7: {"euca2ools", "DescribeInstances", "2015-10-01", noFilters},
	8: {"euca2ools", "RunInstances", "2015-10-01", func(t *testing.T, p *Params) {
		wantString(t, p, "ImageId", "ami-12345678901234567")
		wantString(t, p, "InstanceType", "m1.small")
		wantString(t, p, "KeyName", "mykey")
		wantString(t, p, "UserData", "ZWNobyBoZWxsbw==")
		for _, n := range []string{"MinCount", "MaxCount"} {
			if v, err := p.Int(n, 1); v != 2 || err != nil {
				t.Errorf("%s: %d, %v", n, v, err)
			}
		}
	}},
	9: {"euca2ools", "DescribeImages", "2015-10-01", func(t *testing.T, p *Params) {
		wantList(t, p, "Owner", "self")
		wantFilters(t, p, []Filter{{"architecture", []string{"x86_64"}}})
	}},
	13: {"euca2ools", "RegisterImage", "2015-10-01", func(t *testing.T, p *Params) {
		wantString(t, p, "Name", "capimg")
		wantString(t, p, "ImageLocation", "capbucket/prefix/small.img.manifest.xml")
	}},
	20: {"Boto/2.49.0", "DescribeInstances", "2014-10-01", noFilters},
	21: {"Boto/2.49.0", "CreateKeyPair", "2014-10-01", func(t *testing.T, p *Params) {
		wantString(t, p, "KeyName", "boto2key")
	}},
}

// TestParseCaptured parses the EC2 Query requests that real clients sent
// (Amazon's ec2-api-tools with SigV2, euca2ools and boto 2 with SigV4, all
// POST forms), reads them as their action's handler would, and checks that
// nothing is left over for UnknownParameter.
func TestParseCaptured(t *testing.T) {
	reqs, err := capture.Load(capturedFile)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, c := range reqs {
		want, ok := capturedEC2[c.Line]
		if !ok {
			continue
		}
		seen++
		t.Run(c.Name(), func(t *testing.T) {
			if !strings.HasPrefix(c.Client, want.client) || c.Method != "POST" {
				t.Fatalf("line %d is %s from %q, want POST from %s", c.Line, c.Method, c.Client, want.client)
			}
			r, err := c.Server("", [2]string{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			v, err := Parse(r, 0)
			if err != nil {
				t.Fatal(err)
			}
			p := NewParams(v)
			if got := p.String("Action"); got != want.action {
				t.Errorf("Action %q, want %q", got, want.action)
			}
			if got := p.String("Version"); got != want.version {
				t.Errorf("Version %q, want %q", got, want.version)
			}
			want.check(t, p)
			p.Skip(CommonParams...)
			if err := p.Unknown(); err != nil {
				t.Errorf("left over: %v (%v)", err, p.Unused())
			}
		})
	}
	if seen != len(capturedEC2) {
		t.Fatalf("found %d of the %d EC2 requests", seen, len(capturedEC2))
	}
}

func noFilters(t *testing.T, p *Params) {
	t.Helper()
	wantFilters(t, p, []Filter{})
}

func wantString(t *testing.T, p *Params, name, want string) {
	t.Helper()
	got, err := p.Required(name)
	if got != want || err != nil {
		t.Errorf("%s: %q, %v; want %q", name, got, err, want)
	}
}

func wantList(t *testing.T, p *Params, name string, want ...string) {
	t.Helper()
	got, err := p.List(name)
	if !reflect.DeepEqual(got, want) || err != nil {
		t.Errorf("%s: %q, %v; want %q", name, got, err, want)
	}
}

func wantFilters(t *testing.T, p *Params, want []Filter) {
	t.Helper()
	got, err := p.Filters()
	if !reflect.DeepEqual(got, want) || err != nil {
		t.Errorf("filters %q, %v; want %q", got, err, want)
	}
}
