//go:build e2e

package e2e

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// cloudctlBoto2Script drives boto 2's EC2Connection, which signs with
// SigV4 and a credential scope made from the host name (127.0.0.1 gives
// region "0" and service "127"), at "/" and at Eucalyptus's
// /services/Eucalyptus.
const cloudctlBoto2Script = `
import json, sys
import boto, boto.ec2.connection, boto.ec2.regioninfo
from boto.exception import EC2ResponseError

cfg = json.loads(sys.argv[1])

def connect(path):
    return boto.ec2.connection.EC2Connection(
        aws_access_key_id=cfg["access_key"], aws_secret_access_key=cfg["secret_key"],
        is_secure=False, port=int(cfg["port"]), path=path,
        region=boto.ec2.regioninfo.RegionInfo(name="us-east-1", endpoint="127.0.0.1"))

def error_code(fn):
    try:
        fn()
    except EC2ResponseError as e:
        return [e.status, e.error_code]
    return [200, None]

def session(conn, prefix):
    out = {"auth_handler": type(conn._auth_handler).__name__}
    out["regions"] = [[r.name, r.endpoint] for r in conn.get_all_regions()]
    out["zones"] = [[z.name, z.state] for z in conn.get_all_zones()]

    kp = conn.create_key_pair(prefix + "key")
    out["created"] = {"name": kp.name, "fingerprint": kp.fingerprint, "material": kp.material}
    out["key_pairs"] = sorted(k.name for k in conn.get_all_key_pairs())
    one = conn.get_all_key_pairs(keynames=[prefix + "key"])
    out["key_pair"] = [[k.name, k.fingerprint] for k in one]
    imp = conn.import_key_pair(prefix + "imported", open(cfg["pub"], "rb").read())
    out["imported"] = {"name": imp.name, "fingerprint": imp.fingerprint}
    out["missing_key"] = error_code(lambda: conn.get_all_key_pairs(keynames=[prefix + "nope"]))
    out["duplicate_key"] = error_code(lambda: conn.create_key_pair(prefix + "key"))

    sg = conn.create_security_group(prefix + "sg", "boto 2 group")
    out["sg_id"] = sg.id
    out["authorize"] = conn.authorize_security_group(group_name=prefix + "sg", ip_protocol="tcp",
        from_port=22, to_port=22, cidr_ip="10.1.0.0/16")
    # The old flat parameters: IpProtocol, FromPort, ToPort, CidrIp.
    out["authorize_flat"] = conn.authorize_security_group_deprecated(group_name=prefix + "sg",
        ip_protocol="udp", from_port=53, to_port=53, cidr_ip="192.0.2.0/24")
    groups = conn.get_all_security_groups(groupnames=[prefix + "sg"])
    out["groups"] = [{"id": g.id, "name": g.name, "description": g.description, "owner_id": g.owner_id,
        "rules": sorted([r.ip_protocol, str(r.from_port), str(r.to_port), sorted(str(gr) for gr in r.grants)]
                        for r in g.rules)} for g in groups]
    out["all_groups"] = sorted(g.name for g in conn.get_all_security_groups())
    out["by_filter"] = sorted(g.name for g in conn.get_all_security_groups(filters={"ip-permission.to-port": "53"}))
    out["missing_group"] = error_code(lambda: conn.get_all_security_groups(groupnames=[prefix + "nope"]))

    out["create_tags"] = conn.create_tags([sg.id], {"env": "boto2", "empty": ""})
    out["tags"] = sorted([t.res_id, t.res_type, t.name, t.value] for t in conn.get_all_tags(filters={"resource-id": sg.id}))

    out["revoke"] = conn.revoke_security_group(group_name=prefix + "sg", ip_protocol="tcp",
        from_port=22, to_port=22, cidr_ip="10.1.0.0/16")
    out["rules_after_revoke"] = sorted([r.ip_protocol, str(r.from_port)]
        for g in conn.get_all_security_groups(group_ids=[sg.id]) for r in g.rules)
    out["delete_key"] = conn.delete_key_pair(prefix + "key")
    out["key_pairs_after_delete"] = sorted(k.name for k in conn.get_all_key_pairs())
    out["delete_sg"] = conn.delete_security_group(group_id=sg.id)
    out["dry_run"] = error_code(lambda: conn.create_key_pair(prefix + "dry", dry_run=True))
    return out

print(json.dumps({"root": session(connect("/"), "b2-"),
                  "legacy": session(connect("/services/Eucalyptus"), "legacy-")}))
`

type boto2Session struct {
	AuthHandler string     `json:"auth_handler"`
	Regions     [][]string `json:"regions"`
	Zones       [][]string `json:"zones"`
	Created     struct {
		Name, Fingerprint, Material string
	} `json:"created"`
	KeyPairs []string   `json:"key_pairs"`
	KeyPair  [][]string `json:"key_pair"`
	Imported struct {
		Name, Fingerprint string
	} `json:"imported"`
	MissingKey   []any  `json:"missing_key"`
	DuplicateKey []any  `json:"duplicate_key"`
	SGID         string `json:"sg_id"`
	Authorize    bool   `json:"authorize"`
	AuthFlat     bool   `json:"authorize_flat"`
	Groups       []struct {
		ID, Name, Description string
		OwnerID               string `json:"owner_id"`
		Rules                 []any  `json:"rules"`
	} `json:"groups"`
	AllGroups        []string   `json:"all_groups"`
	ByFilter         []string   `json:"by_filter"`
	MissingGroup     []any      `json:"missing_group"`
	CreateTags       bool       `json:"create_tags"`
	Tags             [][]string `json:"tags"`
	Revoke           bool       `json:"revoke"`
	RulesAfterRevoke [][]string `json:"rules_after_revoke"`
	DeleteKey        bool       `json:"delete_key"`
	KeysAfterDelete  []string   `json:"key_pairs_after_delete"`
	DeleteSG         bool       `json:"delete_sg"`
	DryRun           []any      `json:"dry_run"`
}

// errorCode returns the code of a script's [status, code] pair.
func errorCode(pair []any) string {
	if len(pair) != 2 {
		return ""
	}
	s, _ := pair[1].(string)
	return s
}

var colonHex = regexp.MustCompile(`^([0-9a-f]{2}:)+[0-9a-f]{2}$`)

func TestCloudctlBoto2(t *testing.T) {
	t.Parallel()
	require(t, fileAt(python), pythonModule("boto"), onPath("ssh-keygen"), onPath("openssl"))
	c := startCloudctl(t)
	dir := t.TempDir()
	env := clientEnv(dir)
	key := filepath.Join(dir, "id_rsa")
	run(t, env, "ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "boto2", "-f", key)
	wantImported := digestAfterEquals(t, shell(t, env,
		`ssh-keygen -e -f "$1" -m PKCS8 | openssl pkey -pubin -outform DER | openssl md5 -c`, key+".pub"))

	var out struct{ Root, Legacy boto2Session }
	runPython(t, cloudctlBoto2Script, map[string]any{
		"access_key": c.admin.AccessKeyID, "secret_key": c.admin.SecretAccessKey, "port": c.port, "pub": key + ".pub",
	}, &out)

	for _, tc := range []struct {
		name   string
		prefix string
		s      boto2Session
		others []string // groups and keys the other session left
	}{
		{"root", "b2-", out.Root, nil},
		{"legacy path", "legacy-", out.Legacy, []string{"b2-imported"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, p := tc.s, tc.prefix
			if s.AuthHandler != "HmacAuthV4Handler" {
				t.Errorf("boto 2 used %s, want HmacAuthV4Handler (SigV4 with the host's scope)", s.AuthHandler)
			}
			if len(s.Regions) != 1 || s.Regions[0][0] != "us-east-1" || s.Regions[0][1] != c.addr {
				t.Errorf("get_all_regions = %v", s.Regions)
			}
			if len(s.Zones) != 1 || s.Zones[0][0] != "us-east-1a" || s.Zones[0][1] != "available" {
				t.Errorf("get_all_zones = %v", s.Zones)
			}
			if s.Created.Name != p+"key" || !colonHex.MatchString(s.Created.Fingerprint) ||
				!strings.HasPrefix(s.Created.Material, "-----BEGIN RSA PRIVATE KEY-----") {
				t.Errorf("create_key_pair = %+v", s.Created)
			}
			wantKeys := append([]string{p + "key"}, tc.others...)
			slices.Sort(wantKeys)
			if !slices.Equal(s.KeyPairs, wantKeys) {
				t.Errorf("get_all_key_pairs = %v, want %v", s.KeyPairs, wantKeys)
			}
			if len(s.KeyPair) != 1 || s.KeyPair[0][0] != p+"key" || s.KeyPair[0][1] != s.Created.Fingerprint {
				t.Errorf("get_all_key_pairs(keynames) = %v", s.KeyPair)
			}
			if s.Imported.Name != p+"imported" || s.Imported.Fingerprint != wantImported {
				t.Errorf("import_key_pair = %+v, want fingerprint %s", s.Imported, wantImported)
			}
			if errorCode(s.MissingKey) != "InvalidKeyPair.NotFound" || errorCode(s.DuplicateKey) != "InvalidKeyPair.Duplicate" {
				t.Errorf("missing key: %v, duplicate key: %v", s.MissingKey, s.DuplicateKey)
			}
			if !strings.HasPrefix(s.SGID, "sg-") || !s.Authorize || !s.AuthFlat {
				t.Errorf("create_security_group id %q, authorize %v, authorize (flat) %v", s.SGID, s.Authorize, s.AuthFlat)
			}
			if len(s.Groups) != 1 {
				t.Fatalf("get_all_security_groups(groupnames) = %+v", s.Groups)
			}
			g := s.Groups[0]
			if g.ID != s.SGID || g.Name != p+"sg" || g.Description != "boto 2 group" || g.OwnerID != c.admin.AccountID {
				t.Errorf("group = %+v", g)
			}
			wantRules := []any{
				[]any{"tcp", "22", "22", []any{"10.1.0.0/16"}},
				[]any{"udp", "53", "53", []any{"192.0.2.0/24"}},
			}
			if !jsonEqual(g.Rules, wantRules) {
				t.Errorf("rules = %v, want %v", g.Rules, wantRules)
			}
			if !slices.Contains(s.AllGroups, "default") || !slices.Contains(s.AllGroups, p+"sg") {
				t.Errorf("all groups = %v", s.AllGroups)
			}
			if !slices.Equal(s.ByFilter, []string{p + "sg"}) {
				t.Errorf("filter ip-permission.to-port=53 = %v", s.ByFilter)
			}
			if errorCode(s.MissingGroup) != "InvalidGroup.NotFound" {
				t.Errorf("missing group: %v", s.MissingGroup)
			}
			wantTags := [][]string{{s.SGID, "security-group", "empty", ""}, {s.SGID, "security-group", "env", "boto2"}}
			if !s.CreateTags || !jsonEqual(s.Tags, wantTags) {
				t.Errorf("create_tags %v, get_all_tags = %v, want %v", s.CreateTags, s.Tags, wantTags)
			}
			if !s.Revoke || !jsonEqual(s.RulesAfterRevoke, [][]string{{"udp", "53"}}) {
				t.Errorf("revoke %v, rules after = %v", s.Revoke, s.RulesAfterRevoke)
			}
			wantKeys = append([]string{p + "imported"}, tc.others...)
			slices.Sort(wantKeys)
			if !s.DeleteKey || !slices.Equal(s.KeysAfterDelete, wantKeys) {
				t.Errorf("delete_key_pair %v, left %v, want %v", s.DeleteKey, s.KeysAfterDelete, wantKeys)
			}
			if !s.DeleteSG {
				t.Errorf("delete_security_group = false")
			}
			if errorCode(s.DryRun) != "DryRunOperation" {
				t.Errorf("dry run: %v", s.DryRun)
			}
		})
	}
}

// cloudctlBoto3Script drives boto3's EC2 client: waiters and paginators.
const cloudctlBoto3Script = `
import json, sys, time
import boto3, botocore
from botocore.config import Config
from botocore.exceptions import ClientError, WaiterError

cfg = json.loads(sys.argv[1])
ec2 = boto3.client("ec2", endpoint_url=cfg["endpoint"], region_name="us-east-1",
    aws_access_key_id=cfg["access_key"], aws_secret_access_key=cfg["secret_key"],
    config=Config(retries={"max_attempts": 1}))
out = {}
out["regions"] = [[r["RegionName"], r["Endpoint"]] for r in ec2.describe_regions()["Regions"]]

kp = ec2.create_key_pair(KeyName="b3key", KeyType="ed25519",
    TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "env", "Value": "boto3"}]}])
out["key"] = {"name": kp["KeyName"], "id": kp["KeyPairId"], "fingerprint": kp["KeyFingerprint"],
              "tags": kp.get("Tags", [])}
fast = {"Delay": 1, "MaxAttempts": 5}
start = time.monotonic()
ec2.get_waiter("key_pair_exists").wait(KeyNames=["b3key"], WaiterConfig=fast)
out["key_waiter_seconds"] = time.monotonic() - start

start = time.monotonic()
try:
    ec2.get_waiter("key_pair_exists").wait(KeyNames=["never-there"], WaiterConfig=fast)
    out["missing_waiter"] = "returned"
except WaiterError as e:
    out["missing_waiter"] = str(e)
    out["missing_waiter_code"] = e.last_response.get("Error", {}).get("Code")
out["missing_waiter_seconds"] = time.monotonic() - start
try:
    ec2.describe_key_pairs(KeyNames=["never-there"])
except ClientError as e:
    out["missing_key"] = [e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]]

ids = []
for i in range(12):
    g = ec2.create_security_group(GroupName="page-%02d" % i, Description="paging %d" % i)
    ids.append(g["GroupId"])
    ec2.create_tags(Resources=[g["GroupId"]], Tags=[{"Key": "n", "Value": str(i)}])
out["created_groups"] = ids

start = time.monotonic()
ec2.get_waiter("security_group_exists").wait(GroupIds=[ids[-1]], WaiterConfig=fast)
out["group_waiter_seconds"] = time.monotonic() - start

pages = list(ec2.get_paginator("describe_security_groups").paginate(PaginationConfig={"PageSize": 5}))
out["group_pages"] = [[g["GroupId"] for g in p["SecurityGroups"]] for p in pages]
out["group_all"] = [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]]
filtered = ec2.get_paginator("describe_security_groups").paginate(
    Filters=[{"Name": "group-name", "Values": ["page-0*"]}], PaginationConfig={"PageSize": 5})
out["group_filtered_pages"] = [[g["GroupName"] for g in p["SecurityGroups"]] for p in filtered]

pages = list(ec2.get_paginator("describe_tags").paginate(PaginationConfig={"PageSize": 5}))
out["tag_pages"] = [[[t["ResourceId"], t["Key"], t["Value"]] for t in p["Tags"]] for p in pages]
out["tag_all"] = [[t["ResourceId"], t["Key"], t["Value"]] for t in ec2.describe_tags()["Tags"]]
print(json.dumps(out))
`

func TestCloudctlBoto3(t *testing.T) {
	t.Parallel()
	require(t, fileAt(python), pythonModule("boto3"))
	c := startCloudctl(t)
	var out struct {
		Regions [][]string `json:"regions"`
		Key     struct {
			Name, ID, Fingerprint string
			Tags                  []struct{ Key, Value string }
		} `json:"key"`
		KeyWaiterSeconds     float64      `json:"key_waiter_seconds"`
		MissingWaiter        string       `json:"missing_waiter"`
		MissingWaiterCode    string       `json:"missing_waiter_code"`
		MissingWaiterSeconds float64      `json:"missing_waiter_seconds"`
		MissingKey           []any        `json:"missing_key"`
		CreatedGroups        []string     `json:"created_groups"`
		GroupWaiterSeconds   float64      `json:"group_waiter_seconds"`
		GroupPages           [][]string   `json:"group_pages"`
		GroupAll             []string     `json:"group_all"`
		GroupFilteredPages   [][]string   `json:"group_filtered_pages"`
		TagPages             [][][]string `json:"tag_pages"`
		TagAll               [][]string   `json:"tag_all"`
	}
	runPython(t, cloudctlBoto3Script, map[string]any{
		"endpoint": c.endpoint, "access_key": c.admin.AccessKeyID, "secret_key": c.admin.SecretAccessKey,
	}, &out)

	t.Run("describe_regions", func(t *testing.T) {
		if len(out.Regions) != 1 || out.Regions[0][0] != "us-east-1" {
			t.Errorf("describe_regions = %v", out.Regions)
		}
	})
	t.Run("create_key_pair", func(t *testing.T) {
		if out.Key.Name != "b3key" || !strings.HasPrefix(out.Key.ID, "key-") || len(out.Key.Fingerprint) != 44 ||
			len(out.Key.Tags) != 1 || out.Key.Tags[0].Key != "env" || out.Key.Tags[0].Value != "boto3" {
			t.Errorf("create_key_pair = %+v", out.Key)
		}
	})
	t.Run("waiters", func(t *testing.T) {
		if out.KeyWaiterSeconds >= 1 {
			t.Errorf("key_pair_exists took %.1fs for an existing key; it should succeed on the first attempt", out.KeyWaiterSeconds)
		}
		if out.GroupWaiterSeconds >= 1 {
			t.Errorf("security_group_exists took %.1fs for an existing group", out.GroupWaiterSeconds)
		}
		// The waiter retries on InvalidKeyPair.NotFound until it runs out
		// of attempts; any other answer would end it at once.
		if !strings.Contains(out.MissingWaiter, "Max attempts exceeded") || out.MissingWaiterCode != "InvalidKeyPair.NotFound" {
			t.Errorf("key_pair_exists on a missing key: %q (last code %q), want Max attempts exceeded after InvalidKeyPair.NotFound",
				out.MissingWaiter, out.MissingWaiterCode)
		}
		if out.MissingWaiterSeconds < 3.5 {
			t.Errorf("key_pair_exists on a missing key gave up after %.1fs, want 5 attempts 1s apart", out.MissingWaiterSeconds)
		}
		if len(out.MissingKey) != 2 || out.MissingKey[0] != float64(400) || out.MissingKey[1] != "InvalidKeyPair.NotFound" {
			t.Errorf("describe_key_pairs(never-there) = %v, want 400 InvalidKeyPair.NotFound", out.MissingKey)
		}
	})
	t.Run("describe_security_groups paginator", func(t *testing.T) {
		checkPages(t, "describe_security_groups", out.GroupPages, 5, func(id string) string { return id }, out.GroupAll)
		if len(out.GroupAll) != 13 { // the 12 and default
			t.Errorf("describe_security_groups lists %d groups, want 13", len(out.GroupAll))
		}
		for _, id := range out.CreatedGroups {
			if !slices.Contains(out.GroupAll, id) {
				t.Errorf("group %s missing from describe_security_groups", id)
			}
		}
		var filtered []string
		for _, p := range out.GroupFilteredPages {
			filtered = append(filtered, p...)
		}
		slices.Sort(filtered)
		want := []string{"page-00", "page-01", "page-02", "page-03", "page-04", "page-05", "page-06", "page-07", "page-08", "page-09"}
		if !slices.Equal(filtered, want) || len(out.GroupFilteredPages) != 2 {
			t.Errorf("filtered pages = %v, want %v in 2 pages", out.GroupFilteredPages, want)
		}
	})
	t.Run("describe_tags paginator", func(t *testing.T) {
		var pages [][]string
		for _, p := range out.TagPages {
			var keys []string
			for _, tg := range p {
				keys = append(keys, strings.Join(tg, "/"))
			}
			pages = append(pages, keys)
		}
		var all []string
		for _, tg := range out.TagAll {
			all = append(all, strings.Join(tg, "/"))
		}
		checkPages(t, "describe_tags", pages, 5, func(s string) string { return s }, all)
		if len(all) != 13 { // 12 groups' n and the key's env
			t.Errorf("describe_tags lists %d tags, want 13: %v", len(all), all)
		}
	})
}

// checkPages checks that pages of at most size items hold every item of
// all exactly once.
func checkPages(t *testing.T, what string, pages [][]string, size int, id func(string) string, all []string) {
	t.Helper()
	seen := map[string]int{}
	for i, p := range pages {
		if len(p) > size {
			t.Errorf("%s page %d has %d items, more than the page size %d", what, i, len(p), size)
		}
		for _, item := range p {
			seen[id(item)]++
		}
	}
	for item, n := range seen {
		if n != 1 {
			t.Errorf("%s: %s seen %d times across pages", what, item, n)
		}
	}
	for _, item := range all {
		if seen[id(item)] == 0 {
			t.Errorf("%s: %s is in the unpaginated answer but on no page", what, item)
		}
	}
	if len(seen) != len(all) {
		t.Errorf("%s: %d items across %d pages, %d unpaginated", what, len(seen), len(pages), len(all))
	}
	if want := (len(all) + size - 1) / size; len(pages) < want {
		t.Errorf("%s: %d pages for %d items of page size %d, want at least %d", what, len(pages), len(all), size, want)
	}
}

// jsonEqual reports whether a and b have the same JSON.
func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
