package ec2query

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/koala-cloud/koala/pkg/awserr"
)

// FuzzParams feeds arbitrary query strings and form bodies to Parse and
// every Params accessor. Beyond not panicking: Parse fails only with its
// sentinels; accessors fail only with *awserr.Error; what List and Filters
// return was sent; reading every name leaves nothing unused.
func FuzzParams(f *testing.F) {
	for _, seed := range [][2]string{
		{"Action=DescribeInstances&Version=2016-11-15", ""},
		{"", "SignatureVersion=2&Action=DescribeInstances&Version=2013-02-01&Filter.1.Value.1=running&Filter.2.Value.1=web*&Filter.2.Name=tag%3AName&Filter.1.Name=instance-state-name"},
		{"", "GroupName=default&IpPermissions.1.ToPort=22&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0%2F0&IpPermissions.1.Groups.1.GroupId=sg-1"},
		{"X-Amz-Date=20261121T000000Z", "Action=RunInstances&MinCount=2&MaxCount=2&EbsOptimized=false&UserData=ZWNobyBoZWxsbw%3D%3D"},
		{"InstanceId.10=b&InstanceId.2=a&InstanceId=c&InstanceId.0=d", ""},
		{"MaxResults=5&NextToken=AQ&Filter.1.Name=&Filter.1.Value.01=x", ""},
		{"a=%zz&%ff=1&;=;&&=&", "a=1&a=2"},
		{"Tag.1.Key=k&Tag.1.Value=v&Tag.2147483648.Key=z", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	tokens := NewTokens([]byte("fuzz key"))
	f.Fuzz(func(t *testing.T, query, body string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		v, err := Parse(r, 1<<16)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("Parse: unexpected error %v", err)
			}
			return
		}
		sent := map[string]bool{}
		for name, vs := range v {
			if name == "" || !utf8.ValidString(name) {
				t.Fatalf("Parse kept name %q", name)
			}
			for _, s := range vs {
				sent[s] = true
			}
		}
		p := NewParams(v)
		awsErr := func(what string, err error) {
			var ae *awserr.Error
			if err != nil && (!errors.As(err, &ae) || ae.Status != http.StatusBadRequest) {
				t.Fatalf("%s: error %v is not a 400 *awserr.Error", what, err)
			}
		}
		for _, name := range []string{"Action", "InstanceId", "Filter", "MaxResults", "DryRun"} {
			_ = p.String(name)
			_ = p.Has(name)
			_, err := p.Required(name)
			awsErr("Required", err)
			_, err = p.Int(name, 0)
			awsErr("Int", err)
			_, err = p.Bool(name)
			awsErr("Bool", err)
		}
		list, err := p.List("InstanceId")
		awsErr("List", err)
		for _, s := range list {
			if !sent[s] {
				t.Fatalf("List made up %q", s)
			}
		}
		filters, err := p.Filters()
		awsErr("Filters", err)
		for _, fl := range filters {
			if !sent[fl.Name] {
				t.Fatalf("Filters made up name %q", fl.Name)
			}
			for _, s := range fl.Values {
				if !sent[s] {
					t.Fatalf("Filters made up value %q", s)
				}
			}
		}
		var walk func(q *Params, depth int)
		walk = func(q *Params, depth int) {
			if depth > 3 {
				return
			}
			for _, prefix := range []string{"IpPermissions", "IpRanges", "Groups", "Tag"} {
				subs, err := q.Structs(prefix)
				awsErr("Structs", err)
				for _, s := range subs {
					for _, u := range s.Unused() {
						if _, ok := v[s.prefix+u]; !ok {
							t.Fatalf("member reports unused %q, not sent", s.prefix+u)
						}
					}
					_ = s.String("CidrIp")
					walk(s, depth+1)
				}
			}
		}
		walk(p, 0)
		_, _, err = tokens.Page(p, []string{"a", "b", "c", "d", "e", "f"}, Fingerprint(filters, "fuzz"), 5, 1000)
		awsErr("Page", err)

		unused := p.Unused()
		if !slices.IsSorted(unused) {
			t.Fatalf("Unused not sorted: %q", unused)
		}
		for _, u := range unused {
			if _, ok := v[u]; !ok {
				t.Fatalf("Unused reports %q, not sent", u)
			}
		}
		if (p.Unknown() == nil) != (len(unused) == 0) {
			t.Fatalf("Unknown and Unused disagree")
		}
		for _, u := range unused {
			p.String(u)
		}
		if u := p.Unused(); len(u) != 0 || p.Unknown() != nil {
			t.Fatalf("still unused after reading all: %q", u)
		}
	})
}

// FuzzMatch checks Match against its invariants, and against a regexp
// translation of the pattern when both strings are valid UTF-8.
func FuzzMatch(f *testing.F) {
	for _, seed := range [][2]string{
		{"web*", "webserver"},
		{`\*amazon\?\\`, `*amazon?\`},
		{"a*b*c", "aXbYc"},
		{"*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
		{"caf?", "café"},
		{"?", "\xff"},
		{`\`, `\`},
		{"", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		got := Match(pattern, s)
		if !Match("*", s) || !Match(escapePattern(s), s) {
			t.Fatalf("* or the escaped string does not match %q", s)
		}
		if Match(pattern, s+"\x00") && !strings.Contains(pattern, "*") && !strings.Contains(pattern, "?") {
			if Match(pattern, s) {
				t.Fatalf("wildcard-free %q matches both %q and it with a NUL", pattern, s)
			}
		}
		lone := len(pattern) - len(strings.TrimRight(pattern, `\`))
		if got && lone%2 == 0 && !Match(pattern+"*", s+"tail") {
			t.Fatalf("%q matches %q but %q does not match %q", pattern, s, pattern+"*", s+"tail")
		}
		if utf8.ValidString(pattern) && utf8.ValidString(s) {
			if want := matchRegexp(pattern, s); got != want {
				t.Fatalf("Match(%q, %q) = %v, regexp says %v", pattern, s, got, want)
			}
		}
	})
}

// FuzzTokens checks that Decode accepts exactly what Encode made under the
// same fingerprint.
func FuzzTokens(f *testing.F) {
	f.Add("i-0123456789abcdef0", "fp", "garbage")
	f.Add("", "", "")
	f.Add("r-1", "a", "AXItMRRbhYxOeOdBnDp0qrXJx7gQVrmTxgbOaPjb7NXuGgv2Q5k")
	tk := NewTokens([]byte("fuzz key"))
	f.Fuzz(func(t *testing.T, position, fingerprint, token string) {
		tok := tk.Encode(position, fingerprint)
		if got, err := tk.Decode(tok, fingerprint); err != nil || got != position {
			t.Fatalf("round trip: %q, %v", got, err)
		}
		if fingerprint != "" {
			if _, err := tk.Decode(tok, fingerprint+"x"); err == nil {
				t.Fatal("accepted under another fingerprint")
			}
		}
		if token != tok {
			if pos, err := tk.Decode(token, fingerprint); err == nil && tk.Encode(pos, fingerprint) != token {
				t.Fatalf("accepted %q, which Encode does not make", token)
			}
		}
	})
}
