package ec2api

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/accounts"
	"github.com/koala-cloud/koala/cloudctl/internal/admin"
	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/internal/capture"
	"github.com/koala-cloud/koala/pkg/sigv4"
	"github.com/koala-cloud/koala/pkg/store"
)

type env struct {
	t     *testing.T
	url   string
	db    *store.DB
	api   *API
	alice admin.Credential
	bob   admin.Credential
	svc   *admin.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "c.db"), state.Schema, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	svc := admin.NewService(db)
	res, err := svc.Init(ctx, admin.InitOptions{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := svc.CreateAccount(ctx, "bob", "bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	set, _ := admin.LoadSettings(db)
	a := New(Config{
		Regions: []Region{{Name: "us-east-1", Endpoint: "127.0.0.1:8773"}}, Zones: []string{"us-east-1a"},
		MaxInstances: 20, MaxElasticIPs: 5, MaxSkew: 15 * time.Minute, TokenKey: set.TokenKey, MaxBody: 1 << 20,
	}, db, Deps{}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, db: db, api: a, alice: res.Admin, bob: bob, svc: svc}
}

type reply struct {
	status int
	code   string
	body   string
}

// call sends a SigV4-signed POST as cred at time at (zero: now).
func (e *env) call(cred admin.Credential, params url.Values, at time.Time) reply {
	e.t.Helper()
	body := params.Encode()
	r, _ := http.NewRequest("POST", e.url+"/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if at.IsZero() {
		at = time.Now()
	}
	if cred.AccessKeyID != "" {
		if err := sigv4.Sign(r, cred.AccessKeyID, cred.SecretAccessKey, "us-east-1", "ec2", "", at); err != nil {
			e.t.Fatal(err)
		}
	}
	return e.send(r)
}

func (e *env) send(r *http.Request) reply {
	e.t.Helper()
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var doc struct {
		Errors []struct{ Code string } `xml:"Errors>Error"`
	}
	_ = xml.Unmarshal(b, &doc)
	rep := reply{status: res.StatusCode, body: string(b)}
	if len(doc.Errors) > 0 {
		rep.code = doc.Errors[0].Code
	}
	return rep
}

func (e *env) ok(cred admin.Credential, params url.Values) string {
	e.t.Helper()
	r := e.call(cred, params, time.Time{})
	if r.status != 200 {
		e.t.Fatalf("%s: %d %s", params.Get("Action"), r.status, r.body)
	}
	return r.body
}

func q(kv ...string) url.Values {
	v := url.Values{"Version": {"2016-11-15"}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// keyNames lists an account's key pair names.
func (e *env) keyNames(cred admin.Credential) string {
	e.t.Helper()
	var doc struct {
		Keys []string `xml:"keySet>item>keyName"`
	}
	xml.Unmarshal([]byte(e.ok(cred, q("Action", "DescribeKeyPairs"))), &doc)
	sort.Strings(doc.Keys)
	return strings.Join(doc.Keys, ",")
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	e.ok(e.alice, q("Action", "CreateKeyPair", "KeyName", "kept"))
	e.ok(e.alice, q("Action", "CreateSecurityGroup", "GroupName", "web", "GroupDescription", "web"))
	wrong := e.alice
	wrong.SecretAccessKey = "wrong"
	nobody := admin.Credential{AccessKeyID: "AKIANOBODY", SecretAccessKey: "x"}
	cases := []struct {
		name   string
		cred   admin.Credential
		params url.Values
		at     time.Time
		status int
		code   string
	}{
		{"missing action", e.alice, q(), time.Time{}, 400, "MissingAction"},
		{"unknown action", e.alice, q("Action", "LaunchMissiles"), time.Time{}, 400, "InvalidAction"},
		{"bad signature", wrong, q("Action", "DescribeKeyPairs"), time.Time{}, 403, "SignatureDoesNotMatch"},
		{"unknown key", nobody, q("Action", "DescribeKeyPairs"), time.Time{}, 401, "AuthFailure"},
		{"no signature", admin.Credential{}, q("Action", "DescribeKeyPairs"), time.Time{}, 401, "MissingAuthenticationToken"},
		{"expired timestamp", e.alice, q("Action", "DescribeKeyPairs"), time.Now().Add(-20 * time.Minute), 400, "RequestExpired"},
		{"oversized body", e.alice, q("Action", "DescribeKeyPairs", "Filler", strings.Repeat("x", 1<<20)), time.Time{}, 413, "RequestEntityTooLarge"},
		{"invalid filter", e.alice, q("Action", "DescribeKeyPairs", "Filter.1.Name", "colour", "Filter.1.Value.1", "red"), time.Time{}, 400, "InvalidParameterValue"},
		{"bad next token", e.alice, q("Action", "DescribeTags", "NextToken", "garbage"), time.Time{}, 400, ""},
		{"max results too small", e.alice, q("Action", "DescribeSecurityGroups", "MaxResults", "2"), time.Time{}, 400, "InvalidParameterValue"},
		{"invalid key material", e.alice, q("Action", "ImportKeyPair", "KeyName", "x", "PublicKeyMaterial", base64.StdEncoding.EncodeToString([]byte("ssh-rsa notakey"))), time.Time{}, 400, "InvalidKey.Format"},
		{"unknown parameter", e.alice, q("Action", "CreateKeyPair", "KeyName", "y", "Colour", "red"), time.Time{}, 400, "UnknownParameter"},
		{"missing parameter", e.alice, q("Action", "CreateKeyPair"), time.Time{}, 400, "MissingParameter"},
		{"duplicate key pair", e.alice, q("Action", "CreateKeyPair", "KeyName", "kept"), time.Time{}, 400, "InvalidKeyPair.Duplicate"},
		{"missing key pair", e.alice, q("Action", "DescribeKeyPairs", "KeyName.1", "nope"), time.Time{}, 400, "InvalidKeyPair.NotFound"},
		{"dry run", e.alice, q("Action", "CreateKeyPair", "KeyName", "z", "DryRun", "true"), time.Time{}, 412, "DryRunOperation"},
		{"bad key type", e.alice, q("Action", "CreateKeyPair", "KeyName", "z", "KeyType", "dsa"), time.Time{}, 400, "InvalidParameterValue"},
		{"duplicate group", e.alice, q("Action", "CreateSecurityGroup", "GroupName", "web", "GroupDescription", "again"), time.Time{}, 400, "InvalidGroup.Duplicate"},
		{"group name like an id", e.alice, q("Action", "CreateSecurityGroup", "GroupName", "sg-123", "GroupDescription", "x"), time.Time{}, 400, "InvalidParameterValue"},
		{"missing group", e.alice, q("Action", "DescribeSecurityGroups", "GroupName.1", "nope"), time.Time{}, 400, "InvalidGroup.NotFound"},
		{"malformed group id", e.alice, q("Action", "DescribeSecurityGroups", "GroupId.1", "nope"), time.Time{}, 400, "InvalidGroupId.Malformed"},
		{"default group is reserved", e.alice, q("Action", "DeleteSecurityGroup", "GroupName", "default"), time.Time{}, 400, "InvalidGroup.Reserved"},
		{"bad protocol", e.alice, q("Action", "AuthorizeSecurityGroupIngress", "GroupName", "web", "IpPermissions.1.IpProtocol", "sctpx", "IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"), time.Time{}, 400, "InvalidParameterValue"},
		{"bad cidr", e.alice, q("Action", "AuthorizeSecurityGroupIngress", "GroupName", "web", "IpPermissions.1.IpProtocol", "tcp", "IpPermissions.1.FromPort", "22", "IpPermissions.1.ToPort", "22", "IpPermissions.1.IpRanges.1.CidrIp", "300.0.0.0/8"), time.Time{}, 400, "InvalidParameterValue"},
		{"revoke a rule that is not there", e.alice, q("Action", "RevokeSecurityGroupIngress", "GroupName", "web", "IpProtocol", "tcp", "FromPort", "1", "ToPort", "2", "CidrIp", "10.0.0.0/8"), time.Time{}, 400, "InvalidPermission.NotFound"},
		{"tag an unknown instance", e.alice, q("Action", "CreateTags", "ResourceId.1", "i-12345678", "Tag.1.Key", "a", "Tag.1.Value", "b"), time.Time{}, 400, "InvalidInstanceID.NotFound"},
		{"tag an unknown kind of id", e.alice, q("Action", "CreateTags", "ResourceId.1", "igw-12345678", "Tag.1.Key", "a", "Tag.1.Value", "b"), time.Time{}, 400, "InvalidID"},
		{"reserved tag key", e.alice, q("Action", "CreateTags", "ResourceId.1", "sg-00000000000000000", "Tag.1.Key", "aws:x", "Tag.1.Value", "b"), time.Time{}, 400, "InvalidParameterValue"},
		{"bad list index", e.alice, q("Action", "DescribeKeyPairs", "KeyName.x", "kept"), time.Time{}, 400, ""},
		{"unknown region", e.alice, q("Action", "DescribeRegions", "RegionName.1", "mars-1"), time.Time{}, 400, "InvalidParameterValue"},
		{"unknown attribute", e.alice, q("Action", "DescribeAccountAttributes", "AttributeName.1", "colour"), time.Time{}, 400, "InvalidParameterValue"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			r := e.call(tc.cred, tc.params, tc.at)
			if r.status != tc.status || (tc.code != "" && r.code != tc.code) || r.code == "" {
				t.Fatalf("got %d %q, want %d %q: %s", r.status, r.code, tc.status, tc.code, r.body)
			}
			if !strings.Contains(r.body, "<RequestID>") {
				t.Errorf("no RequestID: %s", r.body)
			}
			if strings.Contains(r.body, "<Message>no such") || strings.Contains(r.body, "already exists: ") {
				t.Errorf("internal words in the message: %s", r.body)
			}
			// Nothing changed.
			if got := e.keyNames(e.alice); got != "kept" {
				t.Fatalf("key pairs after the failure: %s", got)
			}
		})
	}
}

func TestKeyPairsAndTags(t *testing.T) {
	e := newEnv(t)
	body := e.ok(e.alice, q("Action", "CreateKeyPair", "KeyName", "k1", "KeyType", "ed25519",
		"TagSpecification.1.ResourceType", "key-pair", "TagSpecification.1.Tag.1.Key", "env", "TagSpecification.1.Tag.1.Value", "test"))
	var created struct {
		KeyPairID   string `xml:"keyPairId"`
		KeyMaterial string `xml:"keyMaterial"`
		Fingerprint string `xml:"keyFingerprint"`
	}
	xml.Unmarshal([]byte(body), &created)
	if !strings.HasPrefix(created.KeyPairID, "key-") || !strings.Contains(created.KeyMaterial, "OPENSSH PRIVATE KEY") {
		t.Fatalf("create: %s", body)
	}
	pub := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFgsPl6tSMHhKz/DXfzJ6zNnQj9mGpJg4SwRD3Pe1Q9+ me@example"
	e.ok(e.alice, q("Action", "ImportKeyPair", "KeyName", "k2", "PublicKeyMaterial", base64.StdEncoding.EncodeToString([]byte(pub))))
	for _, tc := range []struct {
		params url.Values
		want   string
	}{
		{q("Action", "DescribeKeyPairs"), "k1,k2"},
		{q("Action", "DescribeKeyPairs", "Filter.1.Name", "tag:env", "Filter.1.Value.1", "te*"), "k1"},
		{q("Action", "DescribeKeyPairs", "Filter.1.Name", "key-name", "Filter.1.Value.1", "k?"), "k1,k2"},
		{q("Action", "DescribeKeyPairs", "Filter.1.Name", "key-name", "Filter.1.Value.1", "nothing"), ""},
		{q("Action", "DescribeKeyPairs", "KeyPairId.1", created.KeyPairID), "k1"},
	} {
		var doc struct {
			Keys []string `xml:"keySet>item>keyName"`
		}
		xml.Unmarshal([]byte(e.ok(e.alice, tc.params)), &doc)
		if got := strings.Join(doc.Keys, ","); got != tc.want {
			t.Errorf("%v: got %q want %q", tc.params, got, tc.want)
		}
	}
	withPub := e.ok(e.alice, q("Action", "DescribeKeyPairs", "KeyName.1", "k2", "IncludePublicKey", "true"))
	if !strings.Contains(withPub, "<publicKey>ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFgsPl6tSMHhKz/DXfzJ6zNnQj9mGpJg4SwRD3Pe1Q9+ k2</publicKey>") {
		t.Errorf("public key: %s", withPub)
	}
	// Tags across resources, paged.
	var groupIDs []string
	for i := range 7 {
		var g struct {
			GroupID string `xml:"groupId"`
		}
		xml.Unmarshal([]byte(e.ok(e.alice, q("Action", "CreateSecurityGroup", "GroupName", fmt.Sprintf("g%d", i), "GroupDescription", "d"))), &g)
		groupIDs = append(groupIDs, g.GroupID)
	}
	e.ok(e.alice, q("Action", "CreateTags", "ResourceId.1", groupIDs[0], "ResourceId.2", groupIDs[1], "ResourceId.3", groupIDs[2],
		"Tag.1.Key", "team", "Tag.1.Value", "a", "Tag.2.Key", "cost", "Tag.2.Value", "1"))
	seen := 0
	token := ""
	for page := 0; page < 10; page++ {
		p := q("Action", "DescribeTags", "MaxResults", "5")
		if token != "" {
			p.Set("NextToken", token)
		}
		var doc struct {
			Tags      []string `xml:"tagSet>item>key"`
			NextToken string   `xml:"nextToken"`
		}
		xml.Unmarshal([]byte(e.ok(e.alice, p)), &doc)
		seen += len(doc.Tags)
		if token = doc.NextToken; token == "" {
			break
		}
	}
	if seen != 7 {
		t.Fatalf("paged DescribeTags saw %d tags, want 7", seen)
	}
	e.ok(e.alice, q("Action", "DeleteTags", "ResourceId.1", groupIDs[0], "Tag.1.Key", "team"))
	byKey := e.ok(e.alice, q("Action", "DescribeTags", "Filter.1.Name", "key", "Filter.1.Value.1", "team"))
	if strings.Count(byKey, "<item>") != 2 {
		t.Fatalf("after DeleteTags: %s", byKey)
	}
	e.ok(e.alice, q("Action", "DeleteKeyPair", "KeyName", "k1"))
	e.ok(e.alice, q("Action", "DeleteKeyPair", "KeyName", "k1")) // deleting twice succeeds, as in EC2
	if got := e.keyNames(e.alice); got != "k2" {
		t.Fatalf("after delete: %s", got)
	}
	if all := e.ok(e.alice, q("Action", "DescribeTags", "Filter.1.Name", "resource-type", "Filter.1.Value.1", "key-pair")); strings.Contains(all, "<item>") {
		t.Fatalf("tags of a deleted key pair remain: %s", all)
	}
}

func TestSecurityGroups(t *testing.T) {
	e := newEnv(t)
	var web, db struct {
		GroupID string `xml:"groupId"`
	}
	xml.Unmarshal([]byte(e.ok(e.alice, q("Action", "CreateSecurityGroup", "GroupName", "web", "GroupDescription", "web tier"))), &web)
	xml.Unmarshal([]byte(e.ok(e.alice, q("Action", "CreateSecurityGroup", "GroupName", "db", "GroupDescription", "db tier"))), &db)
	e.ok(e.alice, q("Action", "AuthorizeSecurityGroupIngress", "GroupId", web.GroupID,
		"IpPermissions.1.IpProtocol", "tcp", "IpPermissions.1.FromPort", "80", "IpPermissions.1.ToPort", "80",
		"IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0", "IpPermissions.1.IpRanges.2.CidrIp", "10.1.2.3/8",
		"IpPermissions.2.IpProtocol", "icmp", "IpPermissions.2.FromPort", "-1", "IpPermissions.2.ToPort", "-1",
		"IpPermissions.2.IpRanges.1.CidrIp", "192.168.0.0/16"))
	// Legacy flat form, with a source group: db accepts web.
	e.ok(e.alice, q("Action", "AuthorizeSecurityGroupIngress", "GroupName", "db", "SourceSecurityGroupName", "web"))
	if r := e.call(e.alice, q("Action", "AuthorizeSecurityGroupIngress", "GroupName", "db", "SourceSecurityGroupName", "web"), time.Time{}); r.code != "InvalidPermission.Duplicate" {
		t.Fatalf("duplicate rule: %s", r.body)
	}
	got := e.ok(e.alice, q("Action", "DescribeSecurityGroups", "Filter.1.Name", "ip-permission.from-port", "Filter.1.Value.1", "80"))
	if !strings.Contains(got, "<groupName>web</groupName>") || strings.Contains(got, "<groupName>db</groupName>") ||
		!strings.Contains(got, "<cidrIp>10.0.0.0/8</cidrIp>") {
		t.Fatalf("filter by port: %s", got)
	}
	if r := e.call(e.alice, q("Action", "DeleteSecurityGroup", "GroupId", web.GroupID), time.Time{}); r.code != "DependencyViolation" {
		t.Fatalf("delete a referenced group: %s", r.body)
	}
	e.ok(e.alice, q("Action", "RevokeSecurityGroupIngress", "GroupName", "db", "IpPermissions.1.IpProtocol", "-1",
		"IpPermissions.1.Groups.1.GroupId", web.GroupID))
	e.ok(e.alice, q("Action", "DeleteSecurityGroup", "GroupId", web.GroupID))
	// Paging over more groups than a page.
	for i := range 9 {
		e.ok(e.alice, q("Action", "CreateSecurityGroup", "GroupName", fmt.Sprintf("p%d", i), "GroupDescription", "d"))
	}
	seen := map[string]bool{}
	token := ""
	for range 10 {
		p := q("Action", "DescribeSecurityGroups", "MaxResults", "5")
		if token != "" {
			p.Set("NextToken", token)
		}
		var doc struct {
			IDs       []string `xml:"securityGroupInfo>item>groupId"`
			NextToken string   `xml:"nextToken"`
		}
		xml.Unmarshal([]byte(e.ok(e.alice, p)), &doc)
		for _, id := range doc.IDs {
			if seen[id] {
				t.Fatalf("%s twice", id)
			}
			seen[id] = true
		}
		if token = doc.NextToken; token == "" {
			break
		}
	}
	if len(seen) != 11 { // default, db, p0..p8
		t.Fatalf("paged %d groups, want 11", len(seen))
	}
	// A token is tied to its filters.
	p := q("Action", "DescribeSecurityGroups", "MaxResults", "5")
	var first struct {
		NextToken string `xml:"nextToken"`
	}
	xml.Unmarshal([]byte(e.ok(e.alice, p)), &first)
	other := q("Action", "DescribeSecurityGroups", "MaxResults", "5", "NextToken", first.NextToken,
		"Filter.1.Name", "group-name", "Filter.1.Value.1", "p*")
	if r := e.call(e.alice, other, time.Time{}); r.status != 400 {
		t.Fatalf("token reused with other filters: %s", r.body)
	}
}

func TestIsolationAndRevocation(t *testing.T) {
	e := newEnv(t)
	e.ok(e.alice, q("Action", "CreateKeyPair", "KeyName", "alices"))
	var g struct {
		GroupID string `xml:"groupId"`
	}
	xml.Unmarshal([]byte(e.ok(e.alice, q("Action", "CreateSecurityGroup", "GroupName", "secret", "GroupDescription", "d"))), &g)
	e.ok(e.alice, q("Action", "CreateTags", "ResourceId.1", g.GroupID, "Tag.1.Key", "owner", "Tag.1.Value", "alice"))

	if got := e.keyNames(e.bob); got != "" {
		t.Fatalf("bob sees key pairs %q", got)
	}
	for _, tc := range []struct {
		params url.Values
		code   string
	}{
		{q("Action", "DescribeKeyPairs", "KeyName.1", "alices"), "InvalidKeyPair.NotFound"},
		{q("Action", "DescribeSecurityGroups", "GroupId.1", g.GroupID), "InvalidGroup.NotFound"},
		{q("Action", "DeleteSecurityGroup", "GroupId", g.GroupID), "InvalidGroup.NotFound"},
		{q("Action", "CreateTags", "ResourceId.1", g.GroupID, "Tag.1.Key", "x", "Tag.1.Value", "y"), "InvalidGroup.NotFound"},
		{q("Action", "DeleteTags", "ResourceId.1", g.GroupID), "InvalidGroup.NotFound"},
	} {
		if r := e.call(e.bob, tc.params, time.Time{}); r.code != tc.code {
			t.Errorf("bob %s: %s", tc.params.Get("Action"), r.body)
		}
	}
	e.ok(e.bob, q("Action", "DeleteKeyPair", "KeyName", "alices")) // succeeds, deletes nothing of alice's
	if got := e.keyNames(e.alice); got != "alices" {
		t.Fatalf("alice's key pairs after bob's delete: %q", got)
	}
	if tags := e.ok(e.bob, q("Action", "DescribeTags")); strings.Contains(tags, "alice") {
		t.Fatalf("bob sees alice's tags: %s", tags)
	}
	if groups := e.ok(e.bob, q("Action", "DescribeSecurityGroups")); strings.Contains(groups, g.GroupID) {
		t.Fatalf("bob sees alice's group: %s", groups)
	}
	// A revoked key stops working at once.
	if err := e.svc.DeleteKey(context.Background(), e.bob.AccessKeyID); err != nil {
		t.Fatal(err)
	}
	if r := e.call(e.bob, q("Action", "DescribeKeyPairs"), time.Time{}); r.code != "AuthFailure" {
		t.Fatalf("revoked key: %s", r.body)
	}
}

// TestCapturedRequests replays the EC2 Query requests captured from
// ec2-api-tools, euca2ools and boto 2 with the capture time as the clock:
// each must authenticate, and fail to once a signed byte changes.
func TestCapturedRequests(t *testing.T) {
	e := newEnv(t)
	reqs, err := capture.Load("../../../testdata/requests/captured.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	// The key the captures were signed with, for alice's account.
	err = e.db.Update(func(tx *store.Tx) error {
		return tx.Put(state.AccessKeys, []byte(capture.KeyID), accounts.AccessKey{
			ID: capture.KeyID, Secret: capture.Secret, Account: e.alice.AccountID, Active: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	authCodes := map[string]bool{"AuthFailure": true, "SignatureDoesNotMatch": true, "IncompleteSignature": true,
		"RequestExpired": true, "MissingAuthenticationToken": true}
	n := 0
	for _, c := range reqs {
		body := string(c.Body)
		if c.Method != "POST" || !strings.Contains(body, "Action=") || c.Target != "/" {
			continue
		}
		n++
		t.Run(c.Name(), func(t *testing.T) {
			e.api.cfg.Now = func() time.Time { return c.Time }
			e.api.v4.Now, e.api.v2.Now = e.api.cfg.Now, e.api.cfg.Now
			rec := httptest.NewRecorder()
			r, err := c.Server("", [2]string{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			e.api.ServeHTTP(rec, r)
			if code := errCode(rec.Body.String()); authCodes[code] {
				t.Fatalf("%s: %s", c.Client, rec.Body.String())
			}
			// Change one character of the last parameter's value.
			i := strings.LastIndexByte(body, '=') + 1
			if i >= len(body) {
				i = len(body) - 1
			}
			tampered := []byte(capture.Mutate(body, i))
			r, err = c.Server("", [2]string{}, tampered)
			if err != nil {
				t.Fatal(err)
			}
			rec = httptest.NewRecorder()
			e.api.ServeHTTP(rec, r)
			if code := errCode(rec.Body.String()); !authCodes[code] {
				t.Fatalf("tampered request answered %q: %s", code, rec.Body.String())
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d EC2 requests in the captures", n)
	}
}

func errCode(body string) string {
	var doc struct {
		Errors []struct{ Code string } `xml:"Errors>Error"`
	}
	_ = xml.Unmarshal([]byte(body), &doc)
	if len(doc.Errors) == 0 {
		return ""
	}
	return doc.Errors[0].Code
}

func TestClientTokenIdempotency(t *testing.T) {
	e := newEnv(t)
	runs := 0
	type result struct {
		ID string `xml:"id"`
	}
	e.api.actions["TestCreate"] = func(rq *request) (any, error) {
		name, err := rq.p.Required("Name")
		if err != nil {
			return nil, err
		}
		token := rq.p.String("ClientToken")
		if err := rq.ready(); err != nil {
			return nil, err
		}
		return idempotent(rq, token, func() (result, error) {
			runs++
			return result{ID: fmt.Sprintf("%s-%d", name, runs)}, nil
		})
	}
	first := e.ok(e.alice, q("Action", "TestCreate", "Name", "a", "ClientToken", "tok-1"))
	again := e.ok(e.alice, q("Action", "TestCreate", "Name", "a", "ClientToken", "tok-1"))
	if errCode(again) != "" || runs != 1 || !strings.Contains(again, "<id>a-1</id>") || !strings.Contains(first, "<id>a-1</id>") {
		t.Fatalf("retry ran %d times: %s / %s", runs, first, again)
	}
	if r := e.call(e.alice, q("Action", "TestCreate", "Name", "b", "ClientToken", "tok-1"), time.Time{}); r.code != "IdempotentParameterMismatch" {
		t.Fatalf("same token, other parameters: %s", r.body)
	}
	// Another account's identical token is its own.
	e.ok(e.bob, q("Action", "TestCreate", "Name", "a", "ClientToken", "tok-1"))
	e.ok(e.alice, q("Action", "TestCreate", "Name", "a"))
	if runs != 3 {
		t.Fatalf("%d runs, want 3", runs)
	}
	if r := e.call(e.alice, q("Action", "TestCreate", "Name", "a", "ClientToken", strings.Repeat("x", 65)), time.Time{}); r.code != "InvalidParameterValue" {
		t.Fatalf("long token: %s", r.body)
	}
}

func TestRateLimit(t *testing.T) {
	l := newLimiter(2, 3)
	now := time.Unix(1000, 0)
	got := ""
	for range 5 {
		if l.allow("a", now) {
			got += "y"
		} else {
			got += "n"
		}
	}
	if got != "yyynn" {
		t.Fatalf("burst: %s", got)
	}
	if !l.allow("b", now) {
		t.Fatal("another account is limited too")
	}
	now = now.Add(time.Second)
	if !l.allow("a", now) || !l.allow("a", now) || l.allow("a", now) {
		t.Fatal("refill at the rate")
	}
	e := newEnv(t)
	e.api.limit = newLimiter(0.001, 2)
	e.ok(e.alice, q("Action", "DescribeRegions"))
	e.ok(e.alice, q("Action", "DescribeRegions"))
	if r := e.call(e.alice, q("Action", "DescribeRegions"), time.Time{}); r.status != 503 || r.code != "RequestLimitExceeded" {
		t.Fatalf("over the limit: %d %s", r.status, r.body)
	}
}

func TestPresignedGet(t *testing.T) {
	e := newEnv(t)
	r, _ := http.NewRequest("GET", e.url+"/services/Eucalyptus?Action=DescribeRegions&Version=2014-06-15", nil)
	if err := sigv4.Presign(r, e.alice.AccessKeyID, e.alice.SecretAccessKey, "us-east-1", "ec2", time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	res := e.send(r)
	if res.status != 200 || !strings.Contains(res.body, `xmlns="http://ec2.amazonaws.com/doc/2014-06-15/"`) {
		t.Fatalf("presigned: %d %s", res.status, res.body)
	}
}
