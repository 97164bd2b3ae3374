//go:build e2e

package e2e

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// newEC2Client returns an aws-sdk-go-v2 EC2 client for cloudctl, signing
// as a, without retries (so an error is the first answer).
func newEC2Client(c *cloudctl, a account) *ec2.Client {
	return ec2.NewFromConfig(sdkConfig(a), func(o *ec2.Options) {
		o.BaseEndpoint = aws.String(c.endpoint)
		o.RetryMaxAttempts = 1
	})
}

// wantAPIError checks that err is an EC2 error with code and a 4xx status.
func wantAPIError(t *testing.T, what string, err error, code string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded, want %s", what, code)
		return
	}
	status, got := apiError(err)
	if got != code {
		t.Errorf("%s: error code %q, want %q (%v)", what, got, code, err)
	}
	if status < 400 || status > 499 {
		t.Errorf("%s: HTTP status %d, want 4xx", what, status)
	}
}

func colonHexOf(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

// createdRSAFingerprint is EC2's fingerprint of an RSA key it created: SHA-1
// of the DER PKCS#8 private key (what `openssl pkcs8 -topk8 -nocrypt
// -outform DER | openssl sha1 -c` prints).
func createdRSAFingerprint(t *testing.T, material string) string {
	t.Helper()
	block, _ := pem.Decode([]byte(material))
	if block == nil || block.Type != "RSA PRIVATE KEY" {
		t.Fatalf("key material is not an RSA PRIVATE KEY PEM block: %.60q", material)
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("parse the RSA private key: %v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(der)
	return colonHexOf(sum[:])
}

// ed25519FingerprintOf is EC2's fingerprint of an ED25519 public key line:
// SHA-256 of the SSH blob, padded base64.
func ed25519FingerprintOf(t *testing.T, line string) string {
	t.Helper()
	_, b64 := sshFields(line)
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("public key %q: %v", line, err)
	}
	sum := sha256.Sum256(blob)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func TestCloudctlSDKGoV2(t *testing.T) {
	t.Parallel()
	c := startCloudctl(t)
	client := newEC2Client(c, c.admin)
	ctx := t.Context()

	t.Run("key pairs", func(t *testing.T) {
		rsaKey, err := client.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("sdk-rsa")})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := aws.ToString(rsaKey.KeyFingerprint), createdRSAFingerprint(t, aws.ToString(rsaKey.KeyMaterial)); got != want {
			t.Errorf("rsa KeyFingerprint = %s, SHA-1 of the PKCS#8 key is %s", got, want)
		}
		edKey, err := client.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{
			KeyName: aws.String("sdk-ed"), KeyType: types.KeyTypeEd25519,
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair,
				Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("sdk")}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(edKey.Tags) != 1 || aws.ToString(edKey.Tags[0].Key) != "env" {
			t.Errorf("CreateKeyPair Tags = %+v", edKey.Tags)
		}

		out, err := client.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{
			KeyPairIds: []string{aws.ToString(edKey.KeyPairId)}, IncludePublicKey: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.KeyPairs) != 1 {
			t.Fatalf("DescribeKeyPairs(KeyPairIds) = %d keys", len(out.KeyPairs))
		}
		kp := out.KeyPairs[0]
		if aws.ToString(kp.KeyName) != "sdk-ed" || kp.KeyType != types.KeyTypeEd25519 || kp.CreateTime == nil {
			t.Errorf("described key = %+v", kp)
		}
		if got, want := aws.ToString(kp.KeyFingerprint), ed25519FingerprintOf(t, aws.ToString(kp.PublicKey)); got != want ||
			got != aws.ToString(edKey.KeyFingerprint) {
			t.Errorf("ed25519 fingerprint described %s, created %s, SHA-256 of the public key %s",
				got, aws.ToString(edKey.KeyFingerprint), want)
		}

		out, err = client.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{
			Filters: []types.Filter{{Name: aws.String("tag:env"), Values: []string{"sdk"}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.KeyPairs) != 1 || aws.ToString(out.KeyPairs[0].KeyName) != "sdk-ed" {
			t.Errorf("tag:env=sdk filter = %+v", out.KeyPairs)
		}

		_, err = client.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("sdk-rsa")})
		wantAPIError(t, "CreateKeyPair of an existing name", err, "InvalidKeyPair.Duplicate")
		_, err = client.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("sdk-dsa"), KeyType: "dsa"})
		wantAPIError(t, "CreateKeyPair KeyType=dsa", err, "InvalidParameterValue")

		if _, err := client.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyPairId: edKey.KeyPairId}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("sdk-rsa")}); err != nil {
			t.Fatal(err)
		}
		_, err = client.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"sdk-rsa"}})
		wantAPIError(t, "DescribeKeyPairs of a deleted name", err, "InvalidKeyPair.NotFound")
		_, err = client.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyPairIds: []string{aws.ToString(edKey.KeyPairId)}})
		wantAPIError(t, "DescribeKeyPairs of a deleted ID", err, "InvalidKeyPair.NotFound")
		all, err := client.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all.KeyPairs) != 0 {
			t.Errorf("key pairs left after deleting both: %+v", all.KeyPairs)
		}
	})

	var created []string
	t.Run("DescribeSecurityGroups paginator", func(t *testing.T) {
		for i := range 12 {
			out, err := client.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
				GroupName: aws.String(fmt.Sprintf("sdk-%02d", i)), Description: aws.String("sdk paging"),
				TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup,
					Tags: []types.Tag{{Key: aws.String("batch"), Value: aws.String(fmt.Sprint(i % 2))}}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			created = append(created, aws.ToString(out.GroupId))
		}
		var pages [][]string
		p := ec2.NewDescribeSecurityGroupsPaginator(client, &ec2.DescribeSecurityGroupsInput{},
			func(o *ec2.DescribeSecurityGroupsPaginatorOptions) { o.Limit = 5 })
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, g := range out.SecurityGroups {
				ids = append(ids, aws.ToString(g.GroupId))
			}
			pages = append(pages, ids)
		}
		all, err := client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{})
		if err != nil {
			t.Fatal(err)
		}
		var allIDs []string
		for _, g := range all.SecurityGroups {
			allIDs = append(allIDs, aws.ToString(g.GroupId))
		}
		checkPages(t, "DescribeSecurityGroups", pages, 5, func(s string) string { return s }, allIDs)
		if len(allIDs) != 13 {
			t.Errorf("DescribeSecurityGroups lists %d groups, want the 12 and default", len(allIDs))
		}

		// Pages of a filtered listing hold only what the filter selects.
		var odd []string
		p = ec2.NewDescribeSecurityGroupsPaginator(client, &ec2.DescribeSecurityGroupsInput{
			Filters: []types.Filter{{Name: aws.String("tag:batch"), Values: []string{"1"}}},
		}, func(o *ec2.DescribeSecurityGroupsPaginatorOptions) { o.Limit = 5 })
		n := 0
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n++
			for _, g := range out.SecurityGroups {
				odd = append(odd, aws.ToString(g.GroupName))
			}
		}
		slices.Sort(odd)
		if want := []string{"sdk-01", "sdk-03", "sdk-05", "sdk-07", "sdk-09", "sdk-11"}; !slices.Equal(odd, want) || n != 2 {
			t.Errorf("tag:batch=1 pages: %d pages of %v, want 2 pages of %v", n, odd, want)
		}

		_, err = client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{MaxResults: aws.Int32(4)})
		wantAPIError(t, "DescribeSecurityGroups MaxResults=4", err, "InvalidParameterValue")
	})

	t.Run("DescribeTags paginator", func(t *testing.T) {
		var pages [][]string
		p := ec2.NewDescribeTagsPaginator(client, &ec2.DescribeTagsInput{},
			func(o *ec2.DescribeTagsPaginatorOptions) { o.Limit = 5 })
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var items []string
			for _, tg := range out.Tags {
				items = append(items, aws.ToString(tg.ResourceId)+"/"+aws.ToString(tg.Key))
				if tg.ResourceType != types.ResourceTypeSecurityGroup {
					t.Errorf("tag on %s has ResourceType %q", aws.ToString(tg.ResourceId), tg.ResourceType)
				}
			}
			pages = append(pages, items)
		}
		var all []string
		for _, id := range created {
			all = append(all, id+"/batch")
		}
		checkPages(t, "DescribeTags", pages, 5, func(s string) string { return s }, all)
	})

	t.Run("rules", func(t *testing.T) {
		g, err := client.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
			GroupName: aws.String("sdk-rules"), Description: aws.String("rules")})
		if err != nil {
			t.Fatal(err)
		}
		perm := func(port int32, cidr string) types.IpPermission {
			return types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(port), ToPort: aws.Int32(port),
				IpRanges: []types.IpRange{{CidrIp: aws.String(cidr)}}}
		}
		ports := func() []int32 {
			out, err := client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aws.ToString(g.GroupId)}})
			if err != nil {
				t.Fatal(err)
			}
			var ps []int32
			for _, p := range out.SecurityGroups[0].IpPermissions {
				ps = append(ps, aws.ToInt32(p.FromPort))
			}
			slices.Sort(ps)
			return ps
		}
		auth, err := client.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
			GroupId: g.GroupId, IpPermissions: []types.IpPermission{perm(5, "192.0.2.1/32"), perm(7, "192.0.2.7/32")}})
		if err != nil {
			t.Fatal(err)
		}
		if len(auth.SecurityGroupRules) != 2 || !strings.HasPrefix(aws.ToString(auth.SecurityGroupRules[1].SecurityGroupRuleId), "sgr-") {
			t.Errorf("AuthorizeSecurityGroupIngress rules = %+v", auth.SecurityGroupRules)
		}
		// One new rule and one that exists: all or nothing.
		_, err = client.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
			GroupId: g.GroupId, IpPermissions: []types.IpPermission{perm(6, "192.0.2.6/32"), perm(5, "192.0.2.1/32")}})
		wantAPIError(t, "AuthorizeSecurityGroupIngress with an existing rule", err, "InvalidPermission.Duplicate")
		if got := ports(); !slices.Equal(got, []int32{5, 7}) {
			t.Errorf("ports after a refused authorize = %v, want 5 and 7", got)
		}
		// Revoke by rule ID.
		var port7 string
		for _, r := range auth.SecurityGroupRules {
			if aws.ToInt32(r.FromPort) == 7 {
				port7 = aws.ToString(r.SecurityGroupRuleId)
			}
		}
		if _, err := client.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{
			GroupId: g.GroupId, SecurityGroupRuleIds: []string{port7}}); err != nil {
			t.Fatal(err)
		}
		if got := ports(); !slices.Equal(got, []int32{5}) {
			t.Errorf("ports after revoking rule %s = %v, want 5", port7, got)
		}
		// A group whose rule names itself can still be deleted.
		if _, err := client.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
			GroupId: g.GroupId, IpPermissions: []types.IpPermission{{IpProtocol: aws.String("-1"),
				UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: g.GroupId}}}}}); err != nil {
			t.Fatal(err)
		}
		// Tagging is all or nothing too.
		_, err = client.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{aws.ToString(g.GroupId), "sg-0123456789abcdef0"},
			Tags: []types.Tag{{Key: aws.String("partial"), Value: aws.String("yes")}}})
		wantAPIError(t, "CreateTags on a group and a missing one", err, "InvalidGroup.NotFound")
		tags, err := client.DescribeTags(ctx, &ec2.DescribeTagsInput{
			Filters: []types.Filter{{Name: aws.String("key"), Values: []string{"partial"}}}})
		if err != nil || len(tags.Tags) != 0 {
			t.Errorf("a refused CreateTags tagged %+v (%v)", tags, err)
		}
		if _, err := client.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: g.GroupId}); err != nil {
			t.Errorf("DeleteSecurityGroup of a group referring to itself: %v", err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		_, err := client.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String("sg-0123456789abcdef0")})
		wantAPIError(t, "DeleteSecurityGroup of a missing group", err, "InvalidGroup.NotFound")
		_, err = client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupNames: []string{"nope"}})
		wantAPIError(t, "DescribeSecurityGroups of a missing name", err, "InvalidGroup.NotFound")
		_, err = client.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("sdk-00"), Description: aws.String("x")})
		wantAPIError(t, "CreateSecurityGroup of an existing name", err, "InvalidGroup.Duplicate")
		_, err = client.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{})
		wantAPIError(t, "DeleteKeyPair without a name or ID", err, "MissingParameter")

		bad := newEC2Client(c, account{AccessKeyID: c.admin.AccessKeyID, SecretAccessKey: "wrong" + c.admin.SecretAccessKey})
		_, err = bad.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
		wantAPIError(t, "a request signed with the wrong secret", err, "SignatureDoesNotMatch")
		unknown := newEC2Client(c, account{AccessKeyID: "AKIANOSUCHKEY0000000", SecretAccessKey: "x"})
		_, err = unknown.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
		wantAPIError(t, "a request with an unknown access key", err, "AuthFailure")
	})

	t.Run("DryRun", func(t *testing.T) {
		_, err := client.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
			GroupName: aws.String("sdk-dry"), Description: aws.String("dry"), DryRun: aws.Bool(true)})
		wantAPIError(t, "CreateSecurityGroup DryRun", err, "DryRunOperation")
		_, err = client.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("sdk-dry"), DryRun: aws.Bool(true)})
		wantAPIError(t, "CreateKeyPair DryRun", err, "DryRunOperation")
		_, err = client.DescribeTags(ctx, &ec2.DescribeTagsInput{DryRun: aws.Bool(true)})
		wantAPIError(t, "DescribeTags DryRun", err, "DryRunOperation")
		_, err = client.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(created[0]), DryRun: aws.Bool(true)})
		wantAPIError(t, "DeleteSecurityGroup DryRun", err, "DryRunOperation")
		// Nothing happened.
		_, err = client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupNames: []string{"sdk-dry"}})
		wantAPIError(t, "DescribeSecurityGroups after a dry run", err, "InvalidGroup.NotFound")
		if _, err := client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: created[:1]}); err != nil {
			t.Errorf("the group a dry run deleted is gone: %v", err)
		}
		keys, err := client.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{})
		if err != nil || len(keys.KeyPairs) != 0 {
			t.Errorf("key pairs after a dry-run create: %+v, %v", keys, err)
		}
	})
}
