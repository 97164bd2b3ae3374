package ec2query

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/koala-cloud/koala/pkg/awserr"
)

// params builds Params from a query string.
func params(t testing.TB, query string) *Params {
	t.Helper()
	v, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	return NewParams(v)
}

// wantAWSErr checks that err is an *awserr.Error with code, status 400 and
// message (if message is not empty).
func wantAWSErr(t *testing.T, err error, code, message string) {
	t.Helper()
	var ae *awserr.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *awserr.Error", err, err)
	}
	if ae.Code != code || ae.Status != http.StatusBadRequest {
		t.Errorf("got %s (%d), want %s (400)", ae.Code, ae.Status, code)
	}
	if message != "" && ae.Message != message {
		t.Errorf("message %q, want %q", ae.Message, message)
	}
}

func TestScalars(t *testing.T) {
	p := params(t, "KeyName=k1&KeyName=k2&Empty=&Count=42&Neg=-3&Plus=%2B7&Big=2147483648&Bad=4x&DryRun=TRUE&Off=False&Yes=yes&NoVal=")
	t.Run("String", func(t *testing.T) {
		for name, want := range map[string]string{"KeyName": "k1", "Empty": "", "Absent": "", "Count": "42"} {
			if got := p.String(name); got != want {
				t.Errorf("%s: %q, want %q", name, got, want)
			}
		}
	})
	t.Run("Has", func(t *testing.T) {
		for name, want := range map[string]bool{"KeyName": true, "Empty": true, "Absent": false, "keyname": false} {
			if got := p.Has(name); got != want {
				t.Errorf("%s: %v, want %v", name, got, want)
			}
		}
	})
	t.Run("Required", func(t *testing.T) {
		if v, err := p.Required("KeyName"); v != "k1" || err != nil {
			t.Errorf("KeyName: %q, %v", v, err)
		}
		if v, err := p.Required("Empty"); v != "" || err != nil {
			t.Errorf("Empty: %q, %v", v, err)
		}
		_, err := p.Required("ImageId")
		wantAWSErr(t, err, "MissingParameter", "The request must contain the parameter ImageId")
	})
	t.Run("Int", func(t *testing.T) {
		tests := []struct {
			name    string
			want    int
			message string
		}{
			{"Count", 42, ""},
			{"Neg", -3, ""},
			{"Plus", 7, ""},
			{"Absent", 99, ""},
			{"Big", 0, "Value ( 2147483648 ) for parameter Big is invalid. Expecting an integer."},
			{"Bad", 0, "Value ( 4x ) for parameter Bad is invalid. Expecting an integer."},
			{"Empty", 0, "Value (  ) for parameter Empty is invalid. Expecting an integer."},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := p.Int(tt.name, 99)
				if tt.message != "" {
					wantAWSErr(t, err, "InvalidParameterValue", tt.message)
					return
				}
				if got != tt.want || err != nil {
					t.Fatalf("%d, %v; want %d", got, err, tt.want)
				}
			})
		}
	})
	t.Run("Bool", func(t *testing.T) {
		tests := []struct {
			name    string
			want    bool
			message string
		}{
			{"DryRun", true, ""},
			{"Off", false, ""},
			{"Absent", false, ""},
			{"Yes", false, "Value ( yes ) for parameter Yes is invalid. Expecting 'true' or 'false'."},
			{"NoVal", false, "Value (  ) for parameter NoVal is invalid. Expecting 'true' or 'false'."},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := p.Bool(tt.name)
				if tt.message != "" {
					wantAWSErr(t, err, "InvalidParameterValue", tt.message)
					return
				}
				if got != tt.want || err != nil {
					t.Fatalf("%v, %v; want %v", got, err, tt.want)
				}
			})
		}
	})
	if u := p.Unused(); len(u) != 0 {
		t.Errorf("unused after reading everything: %v", u)
	}
}

func TestLongValueIsClipped(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	p := NewParams(url.Values{"N": {long}})
	_, err := p.Int("N", 0)
	var ae *awserr.Error
	if !errors.As(err, &ae) {
		t.Fatal(err)
	}
	if !strings.Contains(ae.Message, "...") || len(ae.Message) > 400 || !strings.Contains(ae.Message, strings.Repeat("é", 128)) {
		t.Fatalf("message %q", ae.Message)
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		want    []string
		unused  []string
		message string // of an InvalidParameterValue error
	}{
		{"none", "Action=X", []string{}, []string{"Action"}, ""},
		{"in order", "InstanceId.1=i-1&InstanceId.2=i-2", []string{"i-1", "i-2"}, nil, ""},
		{"out of order", "InstanceId.3=c&InstanceId.1=a&InstanceId.2=b", []string{"a", "b", "c"}, nil, ""},
		{"numeric not lexical", "InstanceId.10=j&InstanceId.2=b&InstanceId.1=a&InstanceId.9=i", []string{"a", "b", "i", "j"}, nil, ""},
		{"gaps", "InstanceId.7=g&InstanceId.3=c", []string{"c", "g"}, nil, ""},
		{"empty member", "InstanceId.1=&InstanceId.2=b", []string{"", "b"}, nil, ""},
		{"repeated member keeps first", "InstanceId.1=a&InstanceId.1=z", []string{"a"}, nil, ""},
		{"largest index", "InstanceId.2147483647=z&InstanceId.1=a", []string{"a", "z"}, nil, ""},
		{"bare name is not a member", "InstanceId=i-1", []string{}, []string{"InstanceId"}, ""},
		{"other suffixes are not members", "InstanceId.x=1&InstanceId.1.Foo=2&InstanceId.=3&InstanceId.1=a&InstanceIds.1=b",
			[]string{"a"}, []string{"InstanceId.", "InstanceId.1.Foo", "InstanceId.x", "InstanceIds.1"}, ""},
		{"index zero", "InstanceId.0=a", nil, nil, "Value ( InstanceId.0 ) for parameter InstanceId is invalid. List indexes must be positive integers without leading zeros."},
		{"leading zero", "InstanceId.01=a", nil, nil, "Value ( InstanceId.01 ) for parameter InstanceId is invalid. List indexes must be positive integers without leading zeros."},
		{"index too large", "InstanceId.2147483648=a", nil, nil, "Value ( InstanceId.2147483648 ) for parameter InstanceId is invalid. List indexes must be positive integers without leading zeros."},
		{"index far too large", "InstanceId.99999999999999999999999=a", nil, nil, "Value ( InstanceId.99999999999999999999999 ) for parameter InstanceId is invalid. List indexes must be positive integers without leading zeros."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := params(t, tt.query)
			got, err := p.List("InstanceId")
			if tt.message != "" {
				wantAWSErr(t, err, "InvalidParameterValue", tt.message)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if u := p.Unused(); !reflect.DeepEqual(u, tt.unused) {
				t.Errorf("unused %q, want %q", u, tt.unused)
			}
		})
	}
}

func TestStructs(t *testing.T) {
	const q = "GroupId=sg-1" +
		"&IpPermissions.2.IpProtocol=udp&IpPermissions.2.FromPort=53&IpPermissions.2.ToPort=53" +
		"&IpPermissions.2.IpRanges.1.CidrIp=10.0.0.0%2F8" +
		"&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22" +
		"&IpPermissions.1.IpRanges.10.CidrIp=192.168.0.0%2F16&IpPermissions.1.IpRanges.10.Description=lan" +
		"&IpPermissions.1.IpRanges.2.CidrIp=0.0.0.0%2F0" +
		"&IpPermissions.1.Groups.1.GroupId=sg-2&IpPermissions.1.Groups.1.UserId=123456789012" +
		"&IpPermissions.1.Bogus=1&IpPermissions.10.IpProtocol=icmp"
	type rng struct{ cidr, desc string }
	type perm struct {
		proto    string
		from, to int
		ranges   []rng
		groups   []string
	}
	p := params(t, q)
	if g := p.String("GroupId"); g != "sg-1" {
		t.Fatalf("GroupId %q", g)
	}
	subs, err := p.Structs("IpPermissions")
	if err != nil {
		t.Fatal(err)
	}
	var got []perm
	for _, s := range subs {
		var pm perm
		if pm.proto, err = s.Required("IpProtocol"); err != nil {
			t.Fatal(err)
		}
		if pm.from, err = s.Int("FromPort", -1); err != nil {
			t.Fatal(err)
		}
		if pm.to, err = s.Int("ToPort", -1); err != nil {
			t.Fatal(err)
		}
		ranges, err := s.Structs("IpRanges")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range ranges {
			pm.ranges = append(pm.ranges, rng{r.String("CidrIp"), r.String("Description")})
		}
		groups, err := s.Structs("Groups")
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range groups {
			pm.groups = append(pm.groups, g.String("GroupId"))
		}
		got = append(got, pm)
	}
	want := []perm{
		{"tcp", 22, 22, []rng{{"0.0.0.0/0", ""}, {"192.168.0.0/16", "lan"}}, []string{"sg-2"}},
		{"udp", 53, 53, []rng{{"10.0.0.0/8", ""}}, nil},
		{"icmp", -1, -1, nil, nil},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}

	t.Run("member sees relative names", func(t *testing.T) {
		if u := subs[0].Unused(); !reflect.DeepEqual(u, []string{"Bogus", "Groups.1.UserId"}) {
			t.Errorf("member unused %q", u)
		}
		if u := p.Unused(); !reflect.DeepEqual(u, []string{"IpPermissions.1.Bogus", "IpPermissions.1.Groups.1.UserId"}) {
			t.Errorf("root unused %q", u)
		}
		wantAWSErr(t, p.Unknown(), "UnknownParameter", "The parameter IpPermissions is not recognized")
		wantAWSErr(t, subs[0].Unknown(), "UnknownParameter", "The parameter IpPermissions is not recognized")
		if err := subs[1].Unknown(); err != nil {
			t.Errorf("second member: %v", err)
		}
	})
	t.Run("member errors name the full parameter", func(t *testing.T) {
		_, err := subs[2].Required("FromPort")
		wantAWSErr(t, err, "MissingParameter", "The request must contain the parameter IpPermissions.10.FromPort")
	})
}

func TestStructsEdges(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		n       int
		message string
	}{
		{"none", "Tag=1&Tags.1.Key=a", 0, ""},
		{"bare member is not a struct", "Tag.1=x", 0, ""},
		{"empty field is not a struct", "Tag.1.=x", 0, ""},
		{"non-numeric index", "Tag.a.Key=x", 0, ""},
		{"one member, several fields", "Tag.1.Key=k&Tag.1.Value=v", 1, ""},
		{"gaps", "Tag.5.Key=k&Tag.2.Key=j&Tag.300.Key=z", 3, ""},
		{"index zero", "Tag.0.Key=k", 0, "Value ( Tag.0.Key ) for parameter Tag is invalid. List indexes must be positive integers without leading zeros."},
		{"leading zero", "Tag.1.Key=k&Tag.007.Key=b", 0, "Value ( Tag.007.Key ) for parameter Tag is invalid. List indexes must be positive integers without leading zeros."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subs, err := params(t, tt.query).Structs("Tag")
			if tt.message != "" {
				wantAWSErr(t, err, "InvalidParameterValue", tt.message)
				return
			}
			if err != nil || len(subs) != tt.n {
				t.Fatalf("%d members, %v; want %d", len(subs), err, tt.n)
			}
		})
	}
	t.Run("order by index", func(t *testing.T) {
		subs, err := params(t, "Tag.10.Key=c&Tag.9.Key=b&Tag.1.Key=a").Structs("Tag")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, s := range subs {
			keys = append(keys, s.String("Key"))
		}
		if !reflect.DeepEqual(keys, []string{"a", "b", "c"}) {
			t.Fatalf("keys %q", keys)
		}
	})
	t.Run("nested error names the nested list", func(t *testing.T) {
		subs, err := params(t, "P.1.R.0.C=x").Structs("P")
		if err != nil {
			t.Fatal(err)
		}
		_, err = subs[0].Structs("R")
		wantAWSErr(t, err, "InvalidParameterValue", "Value ( P.1.R.0.C ) for parameter P.1.R is invalid. List indexes must be positive integers without leading zeros.")
	})
}

func TestFilters(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		want   []Filter
		code   string
		msg    string
		unused []string
	}{
		{"none", "Action=X", []Filter{}, "", "", []string{"Action"}},
		{"several values", "Filter.1.Name=instance-state-name&Filter.1.Value.2=stopped&Filter.1.Value.1=running",
			[]Filter{{"instance-state-name", []string{"running", "stopped"}}}, "", "", nil},
		{"several filters in order of N", "Filter.2.Name=tag%3AName&Filter.2.Value.1=web*&Filter.1.Name=architecture&Filter.1.Value.1=x86_64" +
			"&Filter.11.Name=tag-key&Filter.11.Value.1=env",
			[]Filter{{"architecture", []string{"x86_64"}}, {"tag:Name", []string{"web*"}}, {"tag-key", []string{"env"}}}, "", "", nil},
		{"wildcards and escapes kept verbatim", `Filter.1.Name=name&Filter.1.Value.1=%5C*amazon%5C%3F%5C%5C&Filter.1.Value.2=a%3Fc*`,
			[]Filter{{"name", []string{`\*amazon\?\\`, "a?c*"}}}, "", "", nil},
		{"no values", "Filter.1.Name=owner-id", []Filter{{"owner-id", []string{}}}, "", "", nil},
		{"value without index is unknown", "Filter.1.Name=n&Filter.1.Value=v",
			[]Filter{{"n", []string{}}}, "", "", []string{"Filter.1.Value"}},
		{"missing name", "Filter.1.Value.1=running", nil, "MissingParameter", "The request must contain the parameter Filter.1.Name", nil},
		{"value of 255 characters", "Filter.1.Name=n&Filter.1.Value.1=" + strings.Repeat("%E2%82%AC", 255),
			[]Filter{{"n", []string{strings.Repeat("€", 255)}}}, "", "", nil},
		{"value of 256 characters", "Filter.1.Name=n&Filter.1.Value.1=" + strings.Repeat("a", 256),
			nil, "FilterLimitExceeded", "The maximum length for a filter value is 255 characters", nil},
		{"bad value index", "Filter.1.Name=n&Filter.1.Value.0=v", nil, "InvalidParameterValue", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := params(t, tt.query)
			got, err := p.Filters()
			if tt.code != "" {
				wantAWSErr(t, err, tt.code, tt.msg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if u := p.Unused(); !reflect.DeepEqual(u, tt.unused) {
				t.Errorf("unused %q, want %q", u, tt.unused)
			}
		})
	}
}

func TestUnusedAndUnknown(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		read    func(p *Params)
		unused  []string
		message string
	}{
		{"all read", "Action=A&KeyName=k", func(p *Params) { p.String("Action"); p.String("KeyName") }, nil, ""},
		{"sorted", "Zeta=1&Alpha=2&Mid=3", func(*Params) {}, []string{"Alpha", "Mid", "Zeta"}, "The parameter Alpha is not recognized"},
		{"case differs", "instanceId=i-1", func(p *Params) { p.String("InstanceId") }, []string{"instanceId"}, "The parameter instanceId is not recognized"},
		{"top segment is named", "Item.1.ToPort=22", func(*Params) {}, []string{"Item.1.ToPort"}, "The parameter Item is not recognized"},
		{"Has marks read", "DryRun=true", func(p *Params) { p.Has("DryRun") }, nil, ""},
		{"Skip marks read", "Action=A&Signature=s&X-Amz-Date=d", func(p *Params) { p.Skip(CommonParams...) }, nil, ""},
		{"failed read still marks", "MaxCount=x", func(p *Params) { _, _ = p.Int("MaxCount", 1) }, nil, ""},
		{"list read, bare left", "Owner.1=self&Owner=amazon", func(p *Params) { _, _ = p.List("Owner") }, []string{"Owner"}, "The parameter Owner is not recognized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := params(t, tt.query)
			tt.read(p)
			if u := p.Unused(); !reflect.DeepEqual(u, tt.unused) {
				t.Errorf("unused %q, want %q", u, tt.unused)
			}
			err := p.Unknown()
			if tt.message == "" {
				if err != nil {
					t.Errorf("Unknown: %v", err)
				}
				return
			}
			wantAWSErr(t, err, "UnknownParameter", tt.message)
		})
	}
}
