//go:build e2e

package e2e

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestCloudctlIsolation checks that one account's key pairs, security
// groups and tags are invisible and untouchable to another, and that a
// deleted access key stops working at once.
func TestCloudctlIsolation(t *testing.T) {
	t.Parallel()
	c := startCloudctl(t)
	alice := c.createAccount(t, "alice")
	bob := c.createAccount(t, "bob")
	if alice.AccountID == bob.AccountID || alice.AccessKeyID == bob.AccessKeyID {
		t.Fatalf("alice and bob share an account or key: %+v %+v", alice, bob)
	}
	a, b := newEC2Client(c, alice), newEC2Client(c, bob)
	ctx := t.Context()

	// Alice's resources.
	aKey, err := a.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("alice-key")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("shared-name"), KeyType: types.KeyTypeEd25519}); err != nil {
		t.Fatal(err)
	}
	aGroup, err := a.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("alice-web"), Description: aws.String("alice's"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup,
			Tags: []types.Tag{{Key: aws.String("owner"), Value: aws.String("alice")}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	aGroupID := aws.ToString(aGroup.GroupId)
	if _, err := a.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: aGroup.GroupId, IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443),
		CidrIp: aws.String("0.0.0.0/0"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{aws.ToString(aKey.KeyPairId)},
		Tags: []types.Tag{{Key: aws.String("owner"), Value: aws.String("alice")}}}); err != nil {
		t.Fatal(err)
	}

	// aliceHas checks alice's view is intact.
	aliceHas := func(t *testing.T) {
		t.Helper()
		keys, err := a.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, k := range keys.KeyPairs {
			names = append(names, aws.ToString(k.KeyName))
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"alice-key", "shared-name"}) {
			t.Errorf("alice's key pairs = %v, want alice-key and shared-name", names)
		}
		groups, err := a.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aGroupID}})
		if err != nil {
			t.Fatalf("alice's group: %v", err)
		}
		g := groups.SecurityGroups[0]
		if len(g.IpPermissions) != 1 || aws.ToInt32(g.IpPermissions[0].FromPort) != 443 || len(g.IpPermissions[0].IpRanges) != 1 {
			t.Errorf("alice's rules = %+v, want tcp 443 from 0.0.0.0/0 only", g.IpPermissions)
		}
		tags, err := a.DescribeTags(ctx, &ec2.DescribeTagsInput{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tg := range tags.Tags {
			got = append(got, aws.ToString(tg.ResourceId)+" "+aws.ToString(tg.Key)+"="+aws.ToString(tg.Value))
		}
		slices.Sort(got)
		want := []string{aws.ToString(aKey.KeyPairId) + " owner=alice", aGroupID + " owner=alice"}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("alice's tags = %v, want %v", got, want)
		}
	}
	aliceHas(t)

	t.Run("bob sees none of it", func(t *testing.T) {
		keys, err := b.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{})
		if err != nil {
			t.Fatal(err)
		}
		if len(keys.KeyPairs) != 0 {
			t.Errorf("bob's DescribeKeyPairs lists %+v", keys.KeyPairs)
		}
		_, err = b.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"alice-key"}})
		wantAPIError(t, "bob: DescribeKeyPairs alice-key", err, "InvalidKeyPair.NotFound")
		_, err = b.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyPairIds: []string{aws.ToString(aKey.KeyPairId)}})
		wantAPIError(t, "bob: DescribeKeyPairs by alice's key ID", err, "InvalidKeyPair.NotFound")
		keys, err = b.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{
			Filters: []types.Filter{{Name: aws.String("fingerprint"), Values: []string{aws.ToString(aKey.KeyFingerprint)}}}})
		if err != nil || len(keys.KeyPairs) != 0 {
			t.Errorf("bob: DescribeKeyPairs by alice's fingerprint = %+v, %v", keys, err)
		}

		groups, err := b.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range groups.SecurityGroups {
			if aws.ToString(g.GroupId) == aGroupID || aws.ToString(g.OwnerId) != bob.AccountID {
				t.Errorf("bob's DescribeSecurityGroups lists %s (%s) owned by %s", aws.ToString(g.GroupId), aws.ToString(g.GroupName), aws.ToString(g.OwnerId))
			}
		}
		_, err = b.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aGroupID}})
		wantAPIError(t, "bob: DescribeSecurityGroups by alice's group ID", err, "InvalidGroup.NotFound")
		_, err = b.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupNames: []string{"alice-web"}})
		wantAPIError(t, "bob: DescribeSecurityGroups alice-web", err, "InvalidGroup.NotFound")
		groups, err = b.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{
			Filters: []types.Filter{{Name: aws.String("owner-id"), Values: []string{alice.AccountID}}}})
		if err != nil || len(groups.SecurityGroups) != 0 {
			t.Errorf("bob: DescribeSecurityGroups owner-id=alice = %+v, %v", groups, err)
		}

		tags, err := b.DescribeTags(ctx, &ec2.DescribeTagsInput{})
		if err != nil {
			t.Fatal(err)
		}
		if len(tags.Tags) != 0 {
			t.Errorf("bob's DescribeTags lists %+v", tags.Tags)
		}
		tags, err = b.DescribeTags(ctx, &ec2.DescribeTagsInput{
			Filters: []types.Filter{{Name: aws.String("resource-id"), Values: []string{aGroupID}}}})
		if err != nil || len(tags.Tags) != 0 {
			t.Errorf("bob: DescribeTags resource-id=alice's group = %+v, %v", tags, err)
		}
	})

	t.Run("bob cannot change it", func(t *testing.T) {
		// EC2 answers DeleteKeyPair of a name it does not have with
		// success; all that matters is that alice's key survives.
		_, _ = b.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("alice-key")})
		_, err := b.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyPairId: aKey.KeyPairId})
		if err != nil {
			if _, code := apiError(err); code != "InvalidKeyPair.NotFound" {
				t.Errorf("bob: DeleteKeyPair by alice's key ID: %v, want success or InvalidKeyPair.NotFound", err)
			}
		}
		_, err = b.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(aGroupID)})
		wantAPIError(t, "bob: DeleteSecurityGroup of alice's group", err, "InvalidGroup.NotFound")
		_, err = b.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupName: aws.String("alice-web")})
		wantAPIError(t, "bob: DeleteSecurityGroup alice-web", err, "InvalidGroup.NotFound")
		_, err = b.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{aGroupID},
			Tags: []types.Tag{{Key: aws.String("owner"), Value: aws.String("bob")}}})
		wantAPIError(t, "bob: CreateTags on alice's group", err, "InvalidGroup.NotFound")
		_, err = b.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{aws.ToString(aKey.KeyPairId)},
			Tags: []types.Tag{{Key: aws.String("owner"), Value: aws.String("bob")}}})
		wantAPIError(t, "bob: CreateTags on alice's key pair", err, "InvalidKeyPair.NotFound")
		_, err = b.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{aGroupID},
			Tags: []types.Tag{{Key: aws.String("owner")}}})
		wantAPIError(t, "bob: DeleteTags on alice's group", err, "InvalidGroup.NotFound")
		_, err = b.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
			GroupId: aws.String(aGroupID), IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			CidrIp: aws.String("0.0.0.0/0")})
		wantAPIError(t, "bob: AuthorizeSecurityGroupIngress on alice's group", err, "InvalidGroup.NotFound")
		_, err = b.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{
			GroupId: aws.String(aGroupID), IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443),
			CidrIp: aws.String("0.0.0.0/0")})
		wantAPIError(t, "bob: RevokeSecurityGroupIngress on alice's group", err, "InvalidGroup.NotFound")

		// Bob's own group may not name alice's as a source.
		bGroup, err := b.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
			GroupName: aws.String("bob-web"), Description: aws.String("bob's")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
			GroupId: bGroup.GroupId,
			IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(80), ToPort: aws.Int32(80),
				UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(aGroupID)}}}},
		})
		wantAPIError(t, "bob: a rule whose source is alice's group", err, "InvalidGroup.NotFound")

		// Names are per account: bob may have a shared-name of his own.
		if _, err := b.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("shared-name")}); err != nil {
			t.Errorf("bob: CreateKeyPair shared-name: %v", err)
		}
		if _, err := b.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("shared-name")}); err != nil {
			t.Errorf("bob: DeleteKeyPair shared-name: %v", err)
		}
		aliceHas(t)
	})

	t.Run("deleted access key", func(t *testing.T) {
		second := c.createKey(t, "alice")
		if second.AccessKeyID == alice.AccessKeyID {
			t.Fatalf("access-key create returned alice's first key")
		}
		a2 := newEC2Client(c, account{AccessKeyID: second.AccessKeyID, SecretAccessKey: second.SecretAccessKey})
		keys, err := a2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{})
		if err != nil {
			t.Fatalf("alice's second key: %v", err)
		}
		if len(keys.KeyPairs) != 2 {
			t.Errorf("alice's second key sees %d key pairs, want alice's 2", len(keys.KeyPairs))
		}
		c.deleteKey(t, second.AccessKeyID)
		_, err = a2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{})
		wantAPIError(t, "a request with a deleted access key", err, "AuthFailure")
		if _, err := a.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{}); err != nil {
			t.Errorf("alice's first key after deleting the second: %v", err)
		}
	})
}
