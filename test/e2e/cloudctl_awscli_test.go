//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// wantCLIError runs `aws args...`, which must fail with EC2 error code.
func wantCLIError(t *testing.T, cli *awsCLI, code string, args ...string) {
	t.Helper()
	out, err := cli.try(t, args...)
	if err == nil {
		t.Errorf("aws %s succeeded (%s), want error %s", strings.Join(args, " "), strings.TrimSpace(out), code)
		return
	}
	if got := cliErrorCode(err.Error()); got != code {
		t.Errorf("aws %s: error code %q, want %q\n%v", strings.Join(args, " "), got, code, err)
	}
}

// The CLI's JSON shapes, as far as the tests read them.
type (
	cliTag     struct{ Key, Value string }
	cliKeyPair struct {
		KeyPairID      string `json:"KeyPairId"`
		KeyName        string
		KeyFingerprint string
		KeyMaterial    string
		KeyType        string
		PublicKey      string
		CreateTime     string
		Tags           []cliTag
	}
	cliPermission struct {
		IpProtocol string
		FromPort   *int
		ToPort     *int
		IpRanges   []struct{ CidrIp, Description string }
		Groups     []struct {
			GroupID   string `json:"GroupId"`
			GroupName string
			UserID    string `json:"UserId"`
		} `json:"UserIdGroupPairs"`
	}
	cliGroup struct {
		GroupID             string `json:"GroupId"`
		GroupName           string
		Description         string
		OwnerID             string `json:"OwnerId"`
		IpPermissions       []cliPermission
		IpPermissionsEgress []cliPermission
		Tags                []cliTag
	}
	cliTagDescription struct {
		ResourceID   string `json:"ResourceId"`
		ResourceType string
		Key, Value   string
	}
)

func groupNames(gs []cliGroup) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.GroupName)
	}
	slices.Sort(out)
	return out
}

func keyNames(ks []cliKeyPair) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.KeyName)
	}
	slices.Sort(out)
	return out
}

// permFor returns the rule of perms for proto from-to, or nil.
func permFor(perms []cliPermission, proto string, from, to int) *cliPermission {
	for i, p := range perms {
		if p.IpProtocol == proto && p.FromPort != nil && *p.FromPort == from && p.ToPort != nil && *p.ToPort == to {
			return &perms[i]
		}
	}
	return nil
}

// writeKey writes private key material where ssh-keygen and openssl
// accept it (mode 0600).
func writeKey(t *testing.T, path, material string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(material), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sshKeygenSHA256 returns the SHA256 fingerprint `ssh-keygen -l` prints for
// the key file at path, without its "SHA256:" prefix.
func sshKeygenSHA256(t *testing.T, env []string, path string) string {
	t.Helper()
	out := run(t, env, "ssh-keygen", "-l", "-E", "sha256", "-f", path)
	f := strings.Fields(out)
	if len(f) < 2 || !strings.HasPrefix(f[1], "SHA256:") {
		t.Fatalf("ssh-keygen -l -f %s printed %q", path, out)
	}
	return strings.TrimPrefix(f[1], "SHA256:")
}

// ec2Ed25519Fingerprint is how EC2 spells an ED25519 fingerprint given
// ssh-keygen's: the same base64 SHA-256 digest with its '=' padding (a
// 32-byte digest is 43 base64 characters and one '='), without "SHA256:".
// AWS's API reference says only "base64-encoded SHA-256 digest"; EC2's
// actual answers carry the padding, e.g. kubernetes/kops#13304 shows
// describe-key-pairs printing "HvE7+gmH78VS53+iPuRDh/gKjVo26OzYU/qOnJWAgyk=",
// and eksctl#5151 and ansible amazon.aws#2406 pad ssh-keygen's value to
// match EC2.
func ec2Ed25519Fingerprint(sshKeygen string) string { return sshKeygen + "=" }

func TestCloudctlAWSCLI(t *testing.T) {
	t.Parallel()
	require(t, fileAt(awsBin), onPath("ssh-keygen"), onPath("openssl"))
	c := startCloudctl(t)
	cli := newAWSCLI(t, c.endpoint, c.admin)
	dir := t.TempDir()
	env := clientEnv(dir)

	t.Run("describe-regions", func(t *testing.T) {
		var out struct {
			Regions []struct{ RegionName, Endpoint, OptInStatus string }
		}
		cli.json(t, &out, "ec2", "describe-regions")
		if len(out.Regions) != 1 || out.Regions[0].RegionName != "us-east-1" || out.Regions[0].Endpoint != c.addr {
			t.Errorf("describe-regions = %+v, want us-east-1 at %s", out.Regions, c.addr)
		}
		cli.json(t, &out, "ec2", "describe-regions", "--region-names", "us-east-1")
		if len(out.Regions) != 1 {
			t.Errorf("describe-regions --region-names us-east-1 = %+v", out.Regions)
		}
	})

	t.Run("describe-availability-zones", func(t *testing.T) {
		var out struct {
			AvailabilityZones []struct{ ZoneName, State, RegionName, ZoneID string }
		}
		cli.json(t, &out, "ec2", "describe-availability-zones")
		if len(out.AvailabilityZones) != 1 {
			t.Fatalf("describe-availability-zones = %+v, want us-east-1a", out.AvailabilityZones)
		}
		z := out.AvailabilityZones[0]
		if z.ZoneName != "us-east-1a" || z.State != "available" || z.RegionName != "us-east-1" {
			t.Errorf("zone = %+v, want us-east-1a available in us-east-1", z)
		}
		cli.json(t, &out, "ec2", "describe-availability-zones", "--filters", "Name=zone-name,Values=us-east-1b")
		if len(out.AvailabilityZones) != 0 {
			t.Errorf("zone-name=us-east-1b filter kept %+v", out.AvailabilityZones)
		}
	})

	t.Run("describe-account-attributes", func(t *testing.T) {
		var out struct {
			AccountAttributes []struct {
				AttributeName   string
				AttributeValues []struct{ AttributeValue string }
			}
		}
		cli.json(t, &out, "ec2", "describe-account-attributes")
		got := map[string][]string{}
		for _, a := range out.AccountAttributes {
			for _, v := range a.AttributeValues {
				got[a.AttributeName] = append(got[a.AttributeName], v.AttributeValue)
			}
		}
		for _, name := range []string{"supported-platforms", "default-vpc", "max-instances", "max-elastic-ips"} {
			if len(got[name]) == 0 {
				t.Errorf("describe-account-attributes has no %s: %+v", name, got)
			}
		}
		cli.json(t, &out, "ec2", "describe-account-attributes", "--attribute-names", "max-instances")
		if len(out.AccountAttributes) != 1 || out.AccountAttributes[0].AttributeName != "max-instances" {
			t.Errorf("--attribute-names max-instances = %+v", out.AccountAttributes)
		}
	})

	// Key pairs, by name: kind and the fingerprint EC2 would report,
	// computed with openssl and ssh-keygen as AWS's "Verify the
	// fingerprint of your key pair" says.
	created := map[string]cliKeyPair{}
	t.Run("create-key-pair rsa", func(t *testing.T) {
		var kp cliKeyPair
		cli.json(t, &kp, "ec2", "create-key-pair", "--key-name", "cli-rsa")
		if kp.KeyName != "cli-rsa" || !strings.HasPrefix(kp.KeyPairID, "key-") {
			t.Errorf("create-key-pair = %+v", kp)
		}
		if !strings.HasPrefix(kp.KeyMaterial, "-----BEGIN RSA PRIVATE KEY-----") {
			t.Errorf("rsa key material starts %.40q, want a PKCS#1 PEM key", kp.KeyMaterial)
		}
		pem := filepath.Join(dir, "cli-rsa.pem")
		writeKey(t, pem, kp.KeyMaterial)
		want := digestAfterEquals(t, shell(t, env,
			`openssl pkcs8 -in "$1" -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c`, pem))
		if kp.KeyFingerprint != want {
			t.Errorf("rsa KeyFingerprint = %q, openssl pkcs8|sha1 -c gives %q", kp.KeyFingerprint, want)
		}
		if out := run(t, env, "ssh-keygen", "-l", "-f", pem); !strings.HasPrefix(out, "2048 ") {
			t.Errorf("ssh-keygen -l on the created key: %q, want a 2048-bit key", out)
		}
		created["cli-rsa"] = kp
	})

	t.Run("create-key-pair ed25519", func(t *testing.T) {
		var kp cliKeyPair
		cli.json(t, &kp, "ec2", "create-key-pair", "--key-name", "cli-ed", "--key-type", "ed25519")
		if !strings.HasPrefix(kp.KeyMaterial, "-----BEGIN OPENSSH PRIVATE KEY-----") {
			t.Errorf("ed25519 key material starts %.40q, want an OpenSSH private key", kp.KeyMaterial)
		}
		pem := filepath.Join(dir, "cli-ed.pem")
		writeKey(t, pem, kp.KeyMaterial)
		want := ec2Ed25519Fingerprint(sshKeygenSHA256(t, env, pem))
		if kp.KeyFingerprint != want {
			t.Errorf("ed25519 KeyFingerprint = %q, ssh-keygen -l gives %q (EC2 spelling)", kp.KeyFingerprint, want)
		}
		created["cli-ed"] = kp
	})

	imported := map[string]string{} // name -> the .pub file
	t.Run("import-key-pair rsa", func(t *testing.T) {
		key := filepath.Join(dir, "imp-rsa")
		run(t, env, "ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "me@example.com", "-f", key)
		var kp cliKeyPair
		cli.json(t, &kp, "ec2", "import-key-pair", "--key-name", "imp-rsa", "--public-key-material", "fileb://"+key+".pub",
			"--tag-specifications", "ResourceType=key-pair,Tags=[{Key=origin,Value=ssh-keygen}]")
		want := digestAfterEquals(t, shell(t, env,
			`ssh-keygen -e -f "$1" -m PKCS8 | openssl pkey -pubin -outform DER | openssl md5 -c`, key+".pub"))
		if kp.KeyFingerprint != want {
			t.Errorf("imported rsa KeyFingerprint = %q, MD5 of the DER public key is %q", kp.KeyFingerprint, want)
		}
		if kp.KeyMaterial != "" {
			t.Errorf("import-key-pair returned key material")
		}
		if !slices.Contains(kp.Tags, cliTag{"origin", "ssh-keygen"}) {
			t.Errorf("import-key-pair Tags = %+v, want origin=ssh-keygen", kp.Tags)
		}
		imported["imp-rsa"] = key + ".pub"
	})

	t.Run("import-key-pair ed25519", func(t *testing.T) {
		key := filepath.Join(dir, "imp-ed")
		run(t, env, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@example.com", "-f", key)
		var kp cliKeyPair
		cli.json(t, &kp, "ec2", "import-key-pair", "--key-name", "imp-ed", "--public-key-material", "fileb://"+key+".pub")
		want := ec2Ed25519Fingerprint(sshKeygenSHA256(t, env, key+".pub"))
		if kp.KeyFingerprint != want {
			t.Errorf("imported ed25519 KeyFingerprint = %q, want %q", kp.KeyFingerprint, want)
		}
		imported["imp-ed"] = key + ".pub"
	})

	t.Run("key pair errors", func(t *testing.T) {
		wantCLIError(t, cli, "InvalidKeyPair.Duplicate", "ec2", "create-key-pair", "--key-name", "cli-rsa")
		garbage := filepath.Join(dir, "garbage.pub")
		if err := os.WriteFile(garbage, []byte("ssh-rsa this-is-not-a-key me@example.com\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		wantCLIError(t, cli, "InvalidKey.Format", "ec2", "import-key-pair", "--key-name", "garbage",
			"--public-key-material", "fileb://"+garbage)
		wantCLIError(t, cli, "InvalidKeyPair.NotFound", "ec2", "describe-key-pairs", "--key-names", "no-such-key")
		wantCLIError(t, cli, "InvalidParameterValue", "ec2", "describe-key-pairs", "--filters", "Name=no-such-filter,Values=x")
	})

	t.Run("describe-key-pairs", func(t *testing.T) {
		var out struct{ KeyPairs []cliKeyPair }
		cli.json(t, &out, "ec2", "describe-key-pairs")
		if got, want := keyNames(out.KeyPairs), []string{"cli-ed", "cli-rsa", "imp-ed", "imp-rsa"}; !slices.Equal(got, want) {
			t.Fatalf("describe-key-pairs names = %v, want %v", got, want)
		}
		for _, k := range out.KeyPairs {
			if k.PublicKey != "" {
				t.Errorf("%s: PublicKey without --include-public-key", k.KeyName)
			}
			if k.CreateTime == "" || k.KeyType == "" {
				t.Errorf("%s: CreateTime %q KeyType %q", k.KeyName, k.CreateTime, k.KeyType)
			}
			if made, ok := created[k.KeyName]; ok && (made.KeyFingerprint != k.KeyFingerprint || made.KeyPairID != k.KeyPairID) {
				t.Errorf("%s: described %s %s, created %s %s", k.KeyName, k.KeyPairID, k.KeyFingerprint, made.KeyPairID, made.KeyFingerprint)
			}
		}

		cli.json(t, &out, "ec2", "describe-key-pairs", "--filters", "Name=key-type,Values=ed25519")
		if got := keyNames(out.KeyPairs); !slices.Equal(got, []string{"cli-ed", "imp-ed"}) {
			t.Errorf("key-type=ed25519 filter: %v", got)
		}
		cli.json(t, &out, "ec2", "describe-key-pairs", "--filters", "Name=key-name,Values=imp-*", "Name=key-type,Values=rsa")
		if got := keyNames(out.KeyPairs); !slices.Equal(got, []string{"imp-rsa"}) {
			t.Errorf("key-name=imp-* key-type=rsa filters: %v", got)
		}
		cli.json(t, &out, "ec2", "describe-key-pairs", "--filters", "Name=tag:origin,Values=ssh-keygen")
		if got := keyNames(out.KeyPairs); !slices.Equal(got, []string{"imp-rsa"}) {
			t.Errorf("tag:origin filter: %v", got)
		}
		cli.json(t, &out, "ec2", "describe-key-pairs", "--filters", "Name=fingerprint,Values="+created["cli-rsa"].KeyFingerprint)
		if got := keyNames(out.KeyPairs); !slices.Equal(got, []string{"cli-rsa"}) {
			t.Errorf("fingerprint filter: %v", got)
		}
		cli.json(t, &out, "ec2", "describe-key-pairs", "--key-pair-ids", created["cli-ed"].KeyPairID)
		if got := keyNames(out.KeyPairs); !slices.Equal(got, []string{"cli-ed"}) {
			t.Errorf("--key-pair-ids: %v", got)
		}

		// The public key is the one the key was made from, with the key's
		// name as its comment, as EC2 shows it (AWS EC2 User Guide,
		// "Describe your key pairs": "PublicKey": "ssh-ed25519 AAAA...
		// my-key-pair").
		cli.json(t, &out, "ec2", "describe-key-pairs", "--include-public-key", "--key-names", "imp-rsa", "imp-ed", "cli-rsa")
		for _, k := range out.KeyPairs {
			typ, blob := sshFields(k.PublicKey)
			var wantTyp, wantBlob string
			if pub, ok := imported[k.KeyName]; ok {
				data, err := os.ReadFile(pub)
				if err != nil {
					t.Fatal(err)
				}
				wantTyp, wantBlob = sshFields(string(data))
			} else {
				wantTyp, wantBlob = sshFields(run(t, env, "ssh-keygen", "-y", "-f", filepath.Join(dir, k.KeyName+".pem")))
			}
			if typ != wantTyp || blob != wantBlob {
				t.Errorf("%s: PublicKey %q, want %s %s", k.KeyName, k.PublicKey, wantTyp, wantBlob)
			}
			if f := strings.Fields(k.PublicKey); len(f) != 3 || f[2] != k.KeyName {
				t.Errorf("%s: PublicKey %q does not end in the key name, as EC2's does", k.KeyName, k.PublicKey)
			}
		}
	})

	t.Run("delete-key-pair", func(t *testing.T) {
		cli.run(t, "ec2", "delete-key-pair", "--key-name", "cli-rsa")
		cli.run(t, "ec2", "delete-key-pair", "--key-pair-id", created["cli-ed"].KeyPairID)
		var out struct{ KeyPairs []cliKeyPair }
		cli.json(t, &out, "ec2", "describe-key-pairs")
		if got := keyNames(out.KeyPairs); !slices.Equal(got, []string{"imp-ed", "imp-rsa"}) {
			t.Errorf("after deleting cli-rsa and cli-ed: %v", got)
		}
		wantCLIError(t, cli, "InvalidKeyPair.NotFound", "ec2", "describe-key-pairs", "--key-names", "cli-rsa")
		// The name is free again.
		cli.run(t, "ec2", "create-key-pair", "--key-name", "cli-rsa", "--key-type", "ed25519")
	})

	var webID, dbID string
	t.Run("create-security-group", func(t *testing.T) {
		var out struct {
			GroupID string `json:"GroupId"`
			Tags    []cliTag
		}
		cli.json(t, &out, "ec2", "create-security-group", "--group-name", "web", "--description", "web servers",
			"--tag-specifications", "ResourceType=security-group,Tags=[{Key=Name,Value=web}]")
		webID = out.GroupID
		if !strings.HasPrefix(webID, "sg-") || !slices.Contains(out.Tags, cliTag{"Name", "web"}) {
			t.Errorf("create-security-group web = %+v", out)
		}
		cli.json(t, &out, "ec2", "create-security-group", "--group-name", "db", "--description", "databases")
		dbID = out.GroupID
		if !strings.HasPrefix(dbID, "sg-") || dbID == webID {
			t.Fatalf("create-security-group db = %+v (web %s)", out, webID)
		}
		wantCLIError(t, cli, "InvalidGroup.Duplicate", "ec2", "create-security-group", "--group-name", "web", "--description", "again")
	})

	t.Run("authorize-security-group-ingress", func(t *testing.T) {
		cli.run(t, "ec2", "authorize-security-group-ingress", "--group-name", "web",
			"--protocol", "tcp", "--port", "22", "--cidr", "203.0.113.0/24")
		cli.run(t, "ec2", "authorize-security-group-ingress", "--group-id", webID,
			"--protocol", "tcp", "--port", "80-81", "--cidr", "0.0.0.0/0")
		cli.run(t, "ec2", "authorize-security-group-ingress", "--group-id", dbID, "--ip-permissions",
			`[{"IpProtocol":"tcp","FromPort":5432,"ToPort":5432,"UserIdGroupPairs":[{"GroupId":"`+webID+`","Description":"from web"}]},`+
				`{"IpProtocol":"icmp","FromPort":-1,"ToPort":-1,"IpRanges":[{"CidrIp":"10.0.0.0/8","Description":"ping"}]}]`)
		wantCLIError(t, cli, "InvalidPermission.Duplicate", "ec2", "authorize-security-group-ingress", "--group-name", "web",
			"--protocol", "tcp", "--port", "22", "--cidr", "203.0.113.0/24")
		wantCLIError(t, cli, "InvalidGroup.NotFound", "ec2", "authorize-security-group-ingress", "--group-name", "nope",
			"--protocol", "tcp", "--port", "22", "--cidr", "203.0.113.0/24")
	})

	t.Run("describe-security-groups", func(t *testing.T) {
		var out struct{ SecurityGroups []cliGroup }
		cli.json(t, &out, "ec2", "describe-security-groups", "--group-names", "web")
		if len(out.SecurityGroups) != 1 {
			t.Fatalf("--group-names web: %+v", out.SecurityGroups)
		}
		web := out.SecurityGroups[0]
		if web.GroupID != webID || web.Description != "web servers" || web.OwnerID != c.admin.AccountID {
			t.Errorf("web = %+v, want %s owned by %s", web, webID, c.admin.AccountID)
		}
		if p := permFor(web.IpPermissions, "tcp", 22, 22); p == nil || len(p.IpRanges) != 1 || p.IpRanges[0].CidrIp != "203.0.113.0/24" {
			t.Errorf("web's tcp/22 rule: %+v", web.IpPermissions)
		}
		if p := permFor(web.IpPermissions, "tcp", 80, 81); p == nil || len(p.IpRanges) != 1 || p.IpRanges[0].CidrIp != "0.0.0.0/0" {
			t.Errorf("web's tcp/80-81 rule: %+v", web.IpPermissions)
		}
		if !slices.Contains(web.Tags, cliTag{"Name", "web"}) {
			t.Errorf("web's Tags = %+v", web.Tags)
		}

		cli.json(t, &out, "ec2", "describe-security-groups", "--group-ids", dbID)
		if len(out.SecurityGroups) != 1 || out.SecurityGroups[0].GroupName != "db" {
			t.Fatalf("--group-ids %s: %+v", dbID, out.SecurityGroups)
		}
		db := out.SecurityGroups[0]
		p := permFor(db.IpPermissions, "tcp", 5432, 5432)
		if p == nil || len(p.Groups) != 1 || p.Groups[0].GroupID != webID || p.Groups[0].UserID != c.admin.AccountID {
			t.Errorf("db's tcp/5432 rule from web: %+v", db.IpPermissions)
		}
		if p := permFor(db.IpPermissions, "icmp", -1, -1); p == nil || len(p.IpRanges) != 1 || p.IpRanges[0].Description != "ping" {
			t.Errorf("db's icmp rule: %+v", db.IpPermissions)
		}

		cli.json(t, &out, "ec2", "describe-security-groups", "--filters", "Name=ip-permission.from-port,Values=22")
		if got := groupNames(out.SecurityGroups); !slices.Equal(got, []string{"web"}) {
			t.Errorf("ip-permission.from-port=22: %v", got)
		}
		cli.json(t, &out, "ec2", "describe-security-groups", "--filters", "Name=ip-permission.group-id,Values="+webID)
		if got := groupNames(out.SecurityGroups); !slices.Equal(got, []string{"db"}) {
			t.Errorf("ip-permission.group-id=%s: %v", webID, got)
		}
		cli.json(t, &out, "ec2", "describe-security-groups", "--filters", "Name=tag:Name,Values=w*")
		if got := groupNames(out.SecurityGroups); !slices.Equal(got, []string{"web"}) {
			t.Errorf("tag:Name=w*: %v", got)
		}
		cli.json(t, &out, "ec2", "describe-security-groups")
		if got := groupNames(out.SecurityGroups); !slices.Equal(got, []string{"db", "default", "web"}) {
			t.Errorf("all groups: %v, want db, default, web", got)
		}
		wantCLIError(t, cli, "InvalidGroup.NotFound", "ec2", "describe-security-groups", "--group-names", "nope")
		wantCLIError(t, cli, "InvalidGroup.NotFound", "ec2", "describe-security-groups", "--group-ids", "sg-0123456789abcdef0")
		wantCLIError(t, cli, "InvalidGroupId.Malformed", "ec2", "describe-security-groups", "--group-ids", "web")
	})

	t.Run("egress", func(t *testing.T) {
		perm := `[{"IpProtocol":"tcp","FromPort":443,"ToPort":443,"IpRanges":[{"CidrIp":"198.51.100.0/24"}]}]`
		cli.run(t, "ec2", "authorize-security-group-egress", "--group-id", webID, "--ip-permissions", perm)
		var out struct{ SecurityGroups []cliGroup }
		cli.json(t, &out, "ec2", "describe-security-groups", "--group-ids", webID)
		if len(out.SecurityGroups) != 1 || permFor(out.SecurityGroups[0].IpPermissionsEgress, "tcp", 443, 443) == nil {
			t.Errorf("egress tcp/443 missing: %+v", out.SecurityGroups)
		}
		cli.run(t, "ec2", "revoke-security-group-egress", "--group-id", webID, "--ip-permissions", perm)
		cli.json(t, &out, "ec2", "describe-security-groups", "--group-ids", webID)
		if len(out.SecurityGroups) != 1 || permFor(out.SecurityGroups[0].IpPermissionsEgress, "tcp", 443, 443) != nil {
			t.Errorf("egress tcp/443 still there after revoke: %+v", out.SecurityGroups)
		}
	})

	t.Run("delete-security-group", func(t *testing.T) {
		// db's rule names web as its source.
		wantCLIError(t, cli, "DependencyViolation", "ec2", "delete-security-group", "--group-id", webID)
		cli.run(t, "ec2", "revoke-security-group-ingress", "--group-id", dbID, "--ip-permissions",
			`[{"IpProtocol":"tcp","FromPort":5432,"ToPort":5432,"UserIdGroupPairs":[{"GroupId":"`+webID+`"}]}]`)
		cli.run(t, "ec2", "revoke-security-group-ingress", "--group-name", "web",
			"--protocol", "tcp", "--port", "22", "--cidr", "203.0.113.0/24")
		var out struct{ SecurityGroups []cliGroup }
		cli.json(t, &out, "ec2", "describe-security-groups", "--group-ids", webID, dbID)
		for _, g := range out.SecurityGroups {
			if permFor(g.IpPermissions, "tcp", 5432, 5432) != nil || permFor(g.IpPermissions, "tcp", 22, 22) != nil {
				t.Errorf("%s still has a revoked rule: %+v", g.GroupName, g.IpPermissions)
			}
		}
		wantCLIError(t, cli, "InvalidPermission.NotFound", "ec2", "revoke-security-group-ingress", "--group-name", "web",
			"--protocol", "tcp", "--port", "22", "--cidr", "203.0.113.0/24")
		cli.run(t, "ec2", "delete-security-group", "--group-id", webID)
		cli.run(t, "ec2", "delete-security-group", "--group-name", "db")
		wantCLIError(t, cli, "InvalidGroup.NotFound", "ec2", "delete-security-group", "--group-id", webID)
		wantCLIError(t, cli, "InvalidGroup.NotFound", "ec2", "delete-security-group", "--group-name", "db")
		cli.json(t, &out, "ec2", "describe-security-groups")
		if got := groupNames(out.SecurityGroups); !slices.Equal(got, []string{"default"}) {
			t.Errorf("groups after deleting web and db: %v", got)
		}
	})

	t.Run("tags", func(t *testing.T) {
		var sg struct {
			GroupID string `json:"GroupId"`
		}
		cli.json(t, &sg, "ec2", "create-security-group", "--group-name", "tagged", "--description", "tagged")
		var kps struct{ KeyPairs []cliKeyPair }
		cli.json(t, &kps, "ec2", "describe-key-pairs", "--key-names", "imp-ed")
		keyID := kps.KeyPairs[0].KeyPairID
		cli.run(t, "ec2", "create-tags", "--resources", sg.GroupID, keyID,
			"--tags", "Key=env,Value=test", "Key=team,Value=blue")

		var out struct{ Tags []cliTagDescription }
		cli.json(t, &out, "ec2", "describe-tags", "--filters", "Name=resource-id,Values="+sg.GroupID+","+keyID)
		want := []cliTagDescription{
			{keyID, "key-pair", "env", "test"}, {keyID, "key-pair", "team", "blue"},
			{sg.GroupID, "security-group", "env", "test"}, {sg.GroupID, "security-group", "team", "blue"},
		}
		sortTags := func(ts []cliTagDescription) {
			slices.SortFunc(ts, func(a, b cliTagDescription) int {
				return strings.Compare(a.ResourceID+"\x00"+a.Key, b.ResourceID+"\x00"+b.Key)
			})
		}
		sortTags(out.Tags)
		sortTags(want)
		if !slices.Equal(out.Tags, want) {
			t.Errorf("describe-tags = %+v, want %+v", out.Tags, want)
		}
		cli.json(t, &out, "ec2", "describe-tags", "--filters", "Name=resource-type,Values=key-pair", "Name=key,Values=team")
		if len(out.Tags) != 1 || out.Tags[0].ResourceID != keyID {
			t.Errorf("resource-type=key-pair key=team: %+v", out.Tags)
		}

		// A value that does not match leaves the tag; no value removes it.
		cli.run(t, "ec2", "delete-tags", "--resources", sg.GroupID, "--tags", "Key=team,Value=red")
		cli.run(t, "ec2", "delete-tags", "--resources", sg.GroupID, "--tags", "Key=env")
		cli.json(t, &out, "ec2", "describe-tags", "--filters", "Name=resource-id,Values="+sg.GroupID)
		if len(out.Tags) != 1 || out.Tags[0].Key != "team" || out.Tags[0].Value != "blue" {
			t.Errorf("after delete-tags: %+v, want only team=blue", out.Tags)
		}
		wantCLIError(t, cli, "InvalidGroup.NotFound", "ec2", "create-tags", "--resources", "sg-0123456789abcdef0", "--tags", "Key=a,Value=b")
	})

	t.Run("dry-run", func(t *testing.T) {
		wantCLIError(t, cli, "DryRunOperation", "ec2", "create-key-pair", "--key-name", "dry", "--dry-run")
		wantCLIError(t, cli, "DryRunOperation", "ec2", "create-security-group", "--group-name", "dry", "--description", "dry", "--dry-run")
		wantCLIError(t, cli, "DryRunOperation", "ec2", "describe-regions", "--dry-run")
		wantCLIError(t, cli, "DryRunOperation", "ec2", "describe-security-groups", "--dry-run")
		wantCLIError(t, cli, "DryRunOperation", "ec2", "delete-key-pair", "--key-name", "imp-ed", "--dry-run")
		wantCLIError(t, cli, "InvalidKeyPair.NotFound", "ec2", "describe-key-pairs", "--key-names", "dry")
		wantCLIError(t, cli, "InvalidGroup.NotFound", "ec2", "describe-security-groups", "--group-names", "dry")
		// The dry-run delete deleted nothing.
		cli.run(t, "ec2", "describe-key-pairs", "--key-names", "imp-ed")
	})
}
