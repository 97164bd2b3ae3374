package ec2api

import (
	"context"
	"encoding/xml"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/admin"
	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

type addressXML struct {
	PublicIP           string `xml:"publicIp"`
	AllocationID       string `xml:"allocationId"`
	Domain             string `xml:"domain"`
	InstanceID         string `xml:"instanceId"`
	AssociationID      string `xml:"associationId"`
	PrivateIP          string `xml:"privateIpAddress"`
	NetworkBorderGroup string `xml:"networkBorderGroup"`
	Tags               []struct {
		Key   string `xml:"key"`
		Value string `xml:"value"`
	} `xml:"tagSet>item"`
}

func (e *env) describeAddresses(cred admin.Credential, kv ...string) []addressXML {
	e.t.Helper()
	var doc struct {
		Items []addressXML `xml:"addressesSet>item"`
	}
	if err := xml.Unmarshal([]byte(e.ok(cred, q(append([]string{"Action", "DescribeAddresses"}, kv...)...))), &doc); err != nil {
		e.t.Fatal(err)
	}
	return doc.Items
}

func (e *env) allocate(cred admin.Credential, kv ...string) addressXML {
	e.t.Helper()
	var got addressXML
	if err := xml.Unmarshal([]byte(e.ok(cred, q(append([]string{"Action", "AllocateAddress"}, kv...)...))), &got); err != nil {
		e.t.Fatal(err)
	}
	return got
}

// putInstance stores a running instance as a cluster reported it.
func (e *env) putInstance(owner, id, zone, private string) {
	e.t.Helper()
	in := instances.Instance{ID: id, Reservation: "r-1", Owner: owner, Zone: zone, State: api.Running,
		Desired: api.Running, Placed: true, Node: "node-1", MAC: "d0:0d:00:00:00:01", PrivateIP: private,
		Launched: time.Now().UTC(), Since: time.Now().UTC()}
	if err := e.db.Update(func(tx *store.Tx) error { return instances.Put(tx, in) }); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) instance(id string) instances.Instance {
	e.t.Helper()
	var in instances.Instance
	err := e.db.View(func(tx *store.Tx) error {
		var err error
		in, err = instances.Get(tx, id)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return in
}

func TestElasticIPs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice, bob := e.alice, e.bob
	wantErr := func(cred admin.Credential, code string, status int, kv ...string) {
		t.Helper()
		r := e.call(cred, q(kv...), time.Time{})
		if r.code != code || r.status != status {
			t.Errorf("%v: %d %s, want %d %s\n%s", kv, r.status, r.code, status, code, r.body)
		}
	}

	wantErr(alice, "InsufficientAddressCapacity", 500, "Action", "AllocateAddress")
	for zone, pool := range map[string][]string{"us-east-1a": {"192.0.2.10-192.0.2.12"}, "us-east-1b": {"198.51.100.5"}} {
		if err := e.svc.RegisterCluster(ctx, zone, "http://127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.SetClusterAddresses(ctx, zone, pool, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.svc.SetClusterAddresses(ctx, "us-east-1a", []string{"192.0.2.300"}, false); err == nil {
		t.Error("a pool of 192.0.2.300 was taken")
	}

	// The zone with the most free addresses lends one; a border group
	// picks the zone.
	a1 := e.allocate(alice, "TagSpecification.1.ResourceType", "elastic-ip",
		"TagSpecification.1.Tag.1.Key", "role", "TagSpecification.1.Tag.1.Value", "web")
	if a1.PublicIP != "192.0.2.10" || a1.Domain != "vpc" || a1.NetworkBorderGroup != "us-east-1a" || len(a1.AllocationID) != 26 {
		t.Errorf("first allocation %+v", a1)
	}
	b1 := e.allocate(alice, "NetworkBorderGroup", "us-east-1b", "Domain", "standard")
	if b1.PublicIP != "198.51.100.5" || b1.Domain != "standard" || b1.NetworkBorderGroup != "us-east-1b" {
		t.Errorf("allocation in us-east-1b %+v", b1)
	}
	wantErr(alice, "InsufficientAddressCapacity", 500, "Action", "AllocateAddress", "NetworkBorderGroup", "us-east-1b")
	wantErr(alice, "InvalidParameterValue", 400, "Action", "AllocateAddress", "NetworkBorderGroup", "eu-west-1")
	wantErr(alice, "InvalidParameterValue", 400, "Action", "AllocateAddress", "Domain", "classic")
	wantErr(bob, "InvalidParameterValue", 400, "Action", "AllocateAddress", "Address", "192.0.2.10")
	wantErr(bob, "DryRunOperation", 412, "Action", "AllocateAddress", "DryRun", "true")
	e.api.cfg.MaxElasticIPs = 2
	wantErr(alice, "AddressLimitExceeded", 400, "Action", "AllocateAddress")
	e.api.cfg.MaxElasticIPs = 5
	bobs := e.allocate(bob, "Address", "192.0.2.12")
	if bobs.PublicIP != "192.0.2.12" {
		t.Errorf("bob asked for 192.0.2.12, got %+v", bobs)
	}

	e.putInstance(alice.AccountID, "i-0000000a", "us-east-1a", "10.0.0.5")
	e.putInstance(alice.AccountID, "i-0000000b", "us-east-1a", "10.0.0.6")
	e.putInstance(bob.AccountID, "i-0000000c", "us-east-1a", "10.0.0.7")

	// Bad input changes nothing.
	wantErr(alice, "MissingParameter", 400, "Action", "AssociateAddress", "InstanceId", "i-0000000a")
	wantErr(alice, "MissingParameter", 400, "Action", "AssociateAddress", "AllocationId", a1.AllocationID)
	wantErr(alice, "InvalidAllocationID.Malformed", 400, "Action", "AssociateAddress", "AllocationId", "alloc-1", "InstanceId", "i-0000000a")
	wantErr(alice, "InvalidAllocationID.NotFound", 400, "Action", "AssociateAddress", "AllocationId", "eipalloc-00000000000000000", "InstanceId", "i-0000000a")
	wantErr(alice, "InvalidAddress.NotFound", 400, "Action", "AssociateAddress", "PublicIp", "203.0.113.9", "InstanceId", "i-0000000a")
	wantErr(bob, "InvalidAllocationID.NotFound", 400, "Action", "AssociateAddress", "AllocationId", a1.AllocationID, "InstanceId", "i-0000000c")
	wantErr(alice, "InvalidInstanceID.NotFound", 400, "Action", "AssociateAddress", "AllocationId", a1.AllocationID, "InstanceId", "i-0000000c")
	wantErr(alice, "InvalidParameterCombination", 400, "Action", "AssociateAddress", "AllocationId", b1.AllocationID, "InstanceId", "i-0000000a")
	wantErr(alice, "InvalidParameterValue", 400, "Action", "AssociateAddress", "AllocationId", a1.AllocationID, "InstanceId", "i-0000000a", "PrivateIpAddress", "10.0.0.6")
	if got := e.describeAddresses(alice, "PublicIp.1", a1.PublicIP); got[0].InstanceID != "" {
		t.Fatalf("bad input associated the address: %+v", got)
	}

	var assoc struct {
		ID string `xml:"associationId"`
	}
	xml.Unmarshal([]byte(e.ok(alice, q("Action", "AssociateAddress", "AllocationId", a1.AllocationID, "InstanceId", "i-0000000a"))), &assoc)
	if in := e.instance("i-0000000a"); in.PublicIP != a1.PublicIP || len(assoc.ID) != 26 {
		t.Errorf("after associate: instance public ip %q, association %q", in.PublicIP, assoc.ID)
	}
	wantErr(alice, "Resource.AlreadyAssociated", 400, "Action", "AssociateAddress", "AllocationId", a1.AllocationID, "InstanceId", "i-0000000b")
	wantErr(alice, "InvalidIPAddress.InUse", 400, "Action", "ReleaseAddress", "AllocationId", a1.AllocationID)
	e.ok(alice, q("Action", "AssociateAddress", "AllocationId", a1.AllocationID, "InstanceId", "i-0000000b", "AllowReassociation", "true"))
	if a, b := e.instance("i-0000000a"), e.instance("i-0000000b"); a.PublicIP != "" || b.PublicIP != a1.PublicIP {
		t.Errorf("after reassociation: a has %q, b has %q", a.PublicIP, b.PublicIP)
	}

	got := e.describeAddresses(alice, "Filter.1.Name", "instance-id", "Filter.1.Value.1", "i-0000000b")
	if len(got) != 1 || got[0].PublicIP != a1.PublicIP || got[0].PrivateIP != "10.0.0.6" || got[0].AssociationID == "" ||
		len(got[0].Tags) != 1 || got[0].Tags[0].Value != "web" {
		t.Errorf("describe by instance: %+v", got)
	}
	for _, f := range [][]string{
		{"Filter.1.Name", "domain", "Filter.1.Value.1", "standard"},
		{"Filter.1.Name", "network-border-group", "Filter.1.Value.1", "us-east-1b"},
		{"Filter.1.Name", "public-ip", "Filter.1.Value.1", "198.51.*"},
		{"AllocationId.1", b1.AllocationID},
	} {
		if got := e.describeAddresses(alice, f...); len(got) != 1 || got[0].PublicIP != b1.PublicIP {
			t.Errorf("describe %v: %+v", f, got)
		}
	}
	if got := e.describeAddresses(alice, "Filter.1.Name", "tag:role", "Filter.1.Value.1", "web"); len(got) != 1 {
		t.Errorf("describe by tag: %+v", got)
	}
	if got := e.describeAddresses(alice); len(got) != 2 {
		t.Errorf("alice sees %d addresses, want 2", len(got))
	}
	if got := e.describeAddresses(bob); len(got) != 1 || got[0].PublicIP != "192.0.2.12" {
		t.Errorf("bob sees %+v", got)
	}
	wantErr(bob, "InvalidAddress.NotFound", 400, "Action", "DescribeAddresses", "PublicIp.1", a1.PublicIP)
	wantErr(alice, "InvalidParameterValue", 400, "Action", "DescribeAddresses", "Filter.1.Name", "color", "Filter.1.Value.1", "red")

	// Disassociate by association ID; an unknown one is refused.
	wantErr(alice, "InvalidAssociationID.NotFound", 400, "Action", "DisassociateAddress", "AssociationId", "eipassoc-00000000000000000")
	wantErr(bob, "InvalidAddress.NotFound", 400, "Action", "DisassociateAddress", "PublicIp", a1.PublicIP)
	cur := e.describeAddresses(alice, "PublicIp.1", a1.PublicIP)[0]
	e.ok(alice, q("Action", "DisassociateAddress", "AssociationId", cur.AssociationID))
	if got := e.describeAddresses(alice, "PublicIp.1", a1.PublicIP)[0]; got.InstanceID != "" || got.AssociationID != "" {
		t.Errorf("after disassociate: %+v", got)
	}
	if in := e.instance("i-0000000b"); in.PublicIP != "" {
		t.Errorf("instance kept %q", in.PublicIP)
	}

	// A terminated instance lets go of its address; releasing a standard
	// address disassociates it first.
	e.ok(alice, q("Action", "AssociateAddress", "PublicIp", a1.PublicIP, "InstanceId", "i-0000000a"))
	in := e.instance("i-0000000a")
	in.State, in.Desired = api.Terminated, api.Terminated
	if err := e.db.Update(func(tx *store.Tx) error { return instances.Put(tx, in) }); err != nil {
		t.Fatal(err)
	}
	if got := e.describeAddresses(alice, "PublicIp.1", a1.PublicIP)[0]; got.InstanceID != "" {
		t.Errorf("address still associated with a terminated instance: %+v", got)
	}
	wantErr(alice, "IncorrectInstanceState", 400, "Action", "AssociateAddress", "PublicIp", a1.PublicIP, "InstanceId", "i-0000000a")
	e.ok(alice, q("Action", "ReleaseAddress", "AllocationId", a1.AllocationID))
	e.ok(alice, q("Action", "ReleaseAddress", "PublicIp", b1.PublicIP))
	wantErr(alice, "InvalidAllocationID.NotFound", 400, "Action", "ReleaseAddress", "AllocationId", a1.AllocationID)
	if got := e.describeAddresses(alice); len(got) != 0 {
		t.Errorf("after release alice sees %+v", got)
	}
	// The pool has them back.
	if got := e.allocate(bob, "NetworkBorderGroup", "us-east-1b"); got.PublicIP != "198.51.100.5" {
		t.Errorf("re-allocation got %+v", got)
	}
}

func TestModifyInstanceMetadataOptions(t *testing.T) {
	e := newEnv(t)
	e.putInstance(e.alice.AccountID, "i-0000000a", "us-east-1a", "10.0.0.5")
	wantErr := func(cred admin.Credential, code string, kv ...string) {
		t.Helper()
		if r := e.call(cred, q(kv...), time.Time{}); r.code != code {
			t.Errorf("%v: %d %s, want %s\n%s", kv, r.status, r.code, code, r.body)
		}
	}
	mod := "ModifyInstanceMetadataOptions"
	wantErr(e.alice, "InvalidParameterValue", "Action", mod, "InstanceId", "i-0000000a", "HttpTokens", "always")
	wantErr(e.alice, "InvalidParameterValue", "Action", mod, "InstanceId", "i-0000000a", "HttpPutResponseHopLimit", "65")
	wantErr(e.alice, "InvalidParameterValue", "Action", mod, "InstanceId", "i-0000000a", "InstanceMetadataTags", "enabled")
	wantErr(e.alice, "MissingParameter", "Action", mod, "HttpTokens", "required")
	wantErr(e.bob, "InvalidInstanceID.NotFound", "Action", mod, "InstanceId", "i-0000000a", "HttpTokens", "required")
	if got := e.instance("i-0000000a").Metadata; got != (instances.MetadataOptions{}) {
		t.Fatalf("bad input changed the options: %+v", got)
	}
	var res struct {
		InstanceID string `xml:"instanceId"`
		Options    struct {
			State      string `xml:"state"`
			HTTPTokens string `xml:"httpTokens"`
			HopLimit   int    `xml:"httpPutResponseHopLimit"`
			Endpoint   string `xml:"httpEndpoint"`
		} `xml:"instanceMetadataOptions"`
	}
	body := e.ok(e.alice, q("Action", mod, "InstanceId", "i-0000000a", "HttpTokens", "required", "HttpPutResponseHopLimit", "2"))
	if err := xml.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	if res.InstanceID != "i-0000000a" || res.Options.State != "applied" || res.Options.HTTPTokens != "required" ||
		res.Options.HopLimit != 2 || res.Options.Endpoint != "enabled" {
		t.Errorf("modify answered %+v", res)
	}
	// What is not given stays.
	e.ok(e.alice, q("Action", mod, "InstanceId", "i-0000000a", "HttpEndpoint", "disabled"))
	want := instances.MetadataOptions{HTTPTokens: "required", HTTPEndpoint: "disabled", HopLimit: 2}
	if got := e.instance("i-0000000a").Metadata; got != want {
		t.Errorf("stored %+v, want %+v", got, want)
	}
}
