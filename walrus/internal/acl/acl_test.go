package acl

import (
	"errors"
	"strings"
	"testing"
)

type resolver map[string]Owner // email -> owner

func (r resolver) ByEmail(e string) (Owner, bool) { o, ok := r[e]; return o, ok }
func (r resolver) ByID(id string) (Owner, bool) {
	for _, o := range r {
		if o.ID == id {
			return o, true
		}
	}
	return Owner{}, false
}

var (
	alice = Owner{ID: "alice-id", DisplayName: "alice"}
	bob   = Owner{ID: "bob-id", DisplayName: "bob"}
	res   = resolver{"bob@example.com": bob}
)

func TestCannedAllows(t *testing.T) {
	aliceID := &Identity{CanonicalID: alice.ID}
	bobID := &Identity{CanonicalID: bob.ID}
	exec := &Identity{CanonicalID: "cloud", Exec: true}
	cases := []struct {
		canned string
		who    *Identity
		perm   Permission
		want   bool
	}{
		{"private", aliceID, FullControl, true},
		{"private", bobID, Read, false},
		{"private", nil, Read, false},
		{"public-read", nil, Read, true},
		{"public-read", nil, Write, false},
		{"public-read-write", nil, Write, true},
		{"authenticated-read", nil, Read, false},
		{"authenticated-read", bobID, Read, true},
		{"authenticated-read", bobID, ReadACP, false},
		{"aws-exec-read", exec, Read, true},
		{"aws-exec-read", bobID, Read, false},
		{"bucket-owner-read", bobID, Read, true},
		{"bucket-owner-read", bobID, Write, false},
		{"bucket-owner-full-control", bobID, WriteACP, true},
		{"log-delivery-write", bobID, Write, false},
	}
	for _, tc := range cases {
		t.Run(tc.canned, func(t *testing.T) {
			p, err := Canned(tc.canned, alice, bob)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Allows(tc.who, tc.perm); got != tc.want {
				t.Fatalf("Allows(%+v, %s) = %v", tc.who, tc.perm, got)
			}
		})
	}
	if _, err := Canned("public", alice, alice); !errors.Is(err, ErrBadCanned) {
		t.Fatalf("unknown canned: %v", err)
	}
}

func TestGrantHeader(t *testing.T) {
	p := Policy{Owner: alice}
	err := FromGrantHeader(&p, Read, `id="bob-id", uri="http://acs.amazonaws.com/groups/global/AllUsers", emailAddress="bob@example.com"`, res)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Grants) != 3 || p.Grants[0].Grantee.DisplayName != "bob" || p.Grants[2].Grantee.ID != "bob-id" {
		t.Fatalf("grants %+v", p.Grants)
	}
	for _, bad := range []string{`nobody="x"`, `id`, `emailAddress="who@example.com"`, `id="_foo"`} {
		if err := FromGrantHeader(&p, Read, bad, res); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseAndMarshalRoundTrip(t *testing.T) {
	p, _ := Canned("public-read", alice, alice)
	p.Grants = append(p.Grants, Grant{Grantee{Type: TypeUser, ID: bob.ID, DisplayName: bob.DisplayName}, WriteACP})
	got, err := Parse(strings.NewReader(string(p.Marshal())), alice, res)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Marshal()) != string(p.Marshal()) {
		t.Fatalf("round trip:\n%s\n%s", got.Marshal(), p.Marshal())
	}
	email := `<AccessControlPolicy><Owner><ID>alice-id</ID></Owner><AccessControlList><Grant>
	  <Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="AmazonCustomerByEmail"><EmailAddress>bob@example.com</EmailAddress></Grantee>
	  <Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>`
	got, err = Parse(strings.NewReader(email), alice, res)
	if err != nil || got.Grants[0].Grantee.ID != bob.ID {
		t.Fatalf("email grantee: %+v %v", got, err)
	}
	bad := []struct {
		name, doc string
		want      error
	}{
		{"not xml", "<Access", ErrMalformed},
		{"no owner", "<AccessControlPolicy><AccessControlList/></AccessControlPolicy>", ErrMalformed},
		{"other owner", "<AccessControlPolicy><Owner><ID>bob-id</ID></Owner><AccessControlList/></AccessControlPolicy>", ErrOwnerMismatch},
		{"bad permission", `<AccessControlPolicy><Owner><ID>alice-id</ID></Owner><AccessControlList><Grant><Grantee xsi:type="CanonicalUser" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><ID>x</ID></Grantee><Permission>ALL</Permission></Grant></AccessControlList></AccessControlPolicy>`, ErrMalformed},
		{"unknown group", `<AccessControlPolicy><Owner><ID>alice-id</ID></Owner><AccessControlList><Grant><Grantee xsi:type="Group" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><URI>http://example.com/g</URI></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>`, ErrMalformed},
		{"unknown email", strings.Replace(email, "bob@", "eve@", 1), ErrUnresolvable},
		{"unknown user", `<AccessControlPolicy><Owner><ID>alice-id</ID></Owner><AccessControlList><Grant><Grantee xsi:type="CanonicalUser" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><ID>_foo</ID></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>`, ErrUnknownGrantee},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(strings.NewReader(tc.doc), alice, res); !errors.Is(err, tc.want) {
				t.Fatalf("got %v want %v", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	p, _ := Canned("public-read-write", alice, alice)
	f.Add(string(p.Marshal()))
	f.Add(`<AccessControlPolicy><Owner><ID>alice-id</ID></Owner><AccessControlList><Grant><Grantee xsi:type="AmazonCustomerByEmail"><EmailAddress>bob@example.com</EmailAddress></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>`)
	f.Fuzz(func(t *testing.T, doc string) {
		got, err := Parse(strings.NewReader(doc), alice, res)
		if err != nil {
			return
		}
		// Whatever parses must survive its own round trip unchanged.
		again, err := Parse(strings.NewReader(string(got.Marshal())), alice, res)
		if err != nil || string(again.Marshal()) != string(got.Marshal()) {
			t.Fatalf("round trip of %q: %v", doc, err)
		}
	})
}
