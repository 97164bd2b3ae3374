package ec2query

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/query"
)

// TestParseSDKEncoding encodes a request with aws-sdk-go-v2's Query
// encoder the way its EC2 serializers do (flat lists, "X.N" from 1) and
// reads it back: more than nine members, nested lists of structures,
// integers, booleans, and values that need escaping.
func TestParseSDKEncoding(t *testing.T) {
	type rng struct{ cidr, desc string }
	type perm struct {
		proto    string
		from, to int
		ranges   []rng
		groups   []string
	}
	var want []perm
	for i := range 12 {
		want = append(want, perm{
			proto:  "tcp",
			from:   1000 + i,
			to:     2000 + i,
			ranges: []rng{{fmt.Sprintf("10.%d.0.0/16", i), "office & lab, café ☕"}, {"0.0.0.0/0", ""}},
			groups: []string{fmt.Sprintf("sg-%02d", i)},
		})
	}

	var body bytes.Buffer
	enc := query.NewEncoder(&body)
	obj := enc.Object()
	obj.Key("Action").String("AuthorizeSecurityGroupIngress")
	obj.Key("Version").String("2016-11-15")
	obj.Key("GroupId").String("sg-target")
	obj.Key("DryRun").Boolean(true)
	perms := obj.FlatKey("IpPermissions").Array("item")
	for _, pm := range want {
		o := perms.Value().Object()
		o.Key("IpProtocol").String(pm.proto)
		o.Key("FromPort").Integer(int32(pm.from))
		o.Key("ToPort").Integer(int32(pm.to))
		ranges := o.FlatKey("IpRanges").Array("item")
		for _, r := range pm.ranges {
			ro := ranges.Value().Object()
			ro.Key("CidrIp").String(r.cidr)
			if r.desc != "" {
				ro.Key("Description").String(r.desc)
			}
		}
		groups := o.FlatKey("Groups").Array("item")
		for _, g := range pm.groups {
			groups.Value().Object().Key("GroupId").String(g)
		}
	}
	filters := obj.FlatKey("Filter").Array("item")
	fo := filters.Value().Object()
	fo.Key("Name").String("tag:Name")
	vals := fo.FlatKey("Value").Array("item")
	for _, v := range []string{"web*", "db?", `\*`} {
		vals.Value().String(v)
	}
	if err := enc.Encode(); err != nil {
		t.Fatal(err)
	}

	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body.Bytes()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	v, err := Parse(r, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := NewParams(v)
	p.Skip("Action", "Version")
	if dry, err := p.Bool("DryRun"); !dry || err != nil {
		t.Errorf("DryRun %v, %v", dry, err)
	}
	if g, err := p.Required("GroupId"); g != "sg-target" || err != nil {
		t.Errorf("GroupId %q, %v", g, err)
	}
	subs, err := p.Structs("IpPermissions")
	if err != nil {
		t.Fatal(err)
	}
	var got []perm
	for _, s := range subs {
		var pm perm
		pm.proto = s.String("IpProtocol")
		pm.from, _ = s.Int("FromPort", -1)
		pm.to, _ = s.Int("ToPort", -1)
		ranges, _ := s.Structs("IpRanges")
		for _, r := range ranges {
			pm.ranges = append(pm.ranges, rng{r.String("CidrIp"), r.String("Description")})
		}
		groups, _ := s.Structs("Groups")
		for _, g := range groups {
			pm.groups = append(pm.groups, g.String("GroupId"))
		}
		got = append(got, pm)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("IpPermissions\n got %+v\nwant %+v", got, want)
	}
	fs, err := p.Filters()
	if err != nil {
		t.Fatal(err)
	}
	if wantF := []Filter{{"tag:Name", []string{"web*", "db?", `\*`}}}; !reflect.DeepEqual(fs, wantF) {
		t.Errorf("filters %q, want %q", fs, wantF)
	}
	if err := p.Unknown(); err != nil {
		t.Errorf("%v: %q", err, p.Unused())
	}
}
