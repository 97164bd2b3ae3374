package ec2api

import (
	"context"
	"encoding/xml"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/volumes"
	"github.com/koala-cloud/koala/pkg/store"
)

type volumeXMLDoc struct {
	ID     string `xml:"volumeId"`
	Size   int    `xml:"size"`
	Zone   string `xml:"availabilityZone"`
	Status string `xml:"status"`
	Type   string `xml:"volumeType"`
	Tags   []struct {
		Key   string `xml:"key"`
		Value string `xml:"value"`
	} `xml:"tagSet>item"`
}

func TestVolumeActions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.svc.RegisterCluster(ctx, "us-east-1a", "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RegisterCluster(ctx, "us-east-1b", "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetClusterEBS(ctx, "us-east-1a", "http://127.0.0.1:2"); err != nil {
		t.Fatal(err)
	}
	wantErr := func(code string, kv ...string) {
		t.Helper()
		if r := e.call(e.alice, q(kv...), time.Time{}); r.code != code {
			t.Errorf("%v: %d %s, want %s\n%s", kv, r.status, r.code, code, r.body)
		}
	}
	wantErr("MissingParameter", "Action", "CreateVolume", "Size", "1")
	wantErr("MissingParameter", "Action", "CreateVolume", "AvailabilityZone", "us-east-1a")
	wantErr("InvalidParameterValue", "Action", "CreateVolume", "AvailabilityZone", "us-east-1a", "Size", "0")
	wantErr("InvalidParameterValue", "Action", "CreateVolume", "AvailabilityZone", "us-east-1a", "Size", "16385")
	wantErr("InvalidParameterValue", "Action", "CreateVolume", "AvailabilityZone", "us-east-1b", "Size", "1")
	wantErr("InvalidParameterValue", "Action", "CreateVolume", "AvailabilityZone", "us-east-9z", "Size", "1")
	wantErr("InvalidParameterValue", "Action", "CreateVolume", "AvailabilityZone", "us-east-1a", "Size", "1", "VolumeType", "floppy")
	wantErr("InvalidParameterValue", "Action", "CreateVolume", "AvailabilityZone", "us-east-1a", "Size", "1", "Encrypted", "true")
	wantErr("InvalidSnapshot.NotFound", "Action", "CreateVolume", "AvailabilityZone", "us-east-1a", "SnapshotId", "snap-00000001")
	wantErr("DryRunOperation", "Action", "CreateVolume", "AvailabilityZone", "us-east-1a", "Size", "1", "DryRun", "true")

	var v volumeXMLDoc
	body := e.ok(e.alice, q("Action", "CreateVolume", "AvailabilityZone", "us-east-1a", "Size", "2", "VolumeType", "gp3",
		"ClientToken", "tok-1", "TagSpecification.1.ResourceType", "volume", "TagSpecification.1.Tag.1.Key", "Name",
		"TagSpecification.1.Tag.1.Value", "data"))
	xml.Unmarshal([]byte(body), &v)
	if len(v.ID) != 21 || v.Size != 2 || v.Zone != "us-east-1a" || v.Status != "creating" || v.Type != "gp3" || len(v.Tags) != 1 {
		t.Fatalf("created %+v\n%s", v, body)
	}
	var again volumeXMLDoc
	xml.Unmarshal([]byte(e.ok(e.alice, q("Action", "CreateVolume", "AvailabilityZone", "us-east-1a", "Size", "2", "VolumeType", "gp3",
		"ClientToken", "tok-1", "TagSpecification.1.ResourceType", "volume", "TagSpecification.1.Tag.1.Key", "Name",
		"TagSpecification.1.Tag.1.Value", "data"))), &again)
	if again.ID != v.ID {
		t.Errorf("the same client token made %s and %s", v.ID, again.ID)
	}
	wantErr("IdempotentParameterMismatch", "Action", "CreateVolume", "AvailabilityZone", "us-east-1a", "Size", "3", "ClientToken", "tok-1")

	describe := func(kv ...string) []volumeXMLDoc {
		t.Helper()
		var doc struct {
			Volumes []volumeXMLDoc `xml:"volumeSet>item"`
		}
		xml.Unmarshal([]byte(e.ok(e.alice, q(append([]string{"Action", "DescribeVolumes"}, kv...)...))), &doc)
		return doc.Volumes
	}
	if got := describe(); len(got) != 1 || got[0].ID != v.ID {
		t.Errorf("describe: %+v", got)
	}
	if got := describe("Filter.1.Name", "status", "Filter.1.Value.1", "available"); len(got) != 0 {
		t.Errorf("status=available: %+v", got)
	}
	if got := describe("Filter.1.Name", "tag:Name", "Filter.1.Value.1", "data", "Filter.2.Name", "size", "Filter.2.Value.1", "2"); len(got) != 1 {
		t.Errorf("tag and size: %+v", got)
	}
	wantErr("InvalidVolumeID.Malformed", "Action", "DescribeVolumes", "VolumeId.1", "volume-1")
	wantErr("InvalidVolume.NotFound", "Action", "DescribeVolumes", "VolumeId.1", "vol-00000000000000001")
	if r := e.call(e.bob, q("Action", "DescribeVolumes", "VolumeId.1", v.ID), time.Time{}); r.code != "InvalidVolume.NotFound" {
		t.Errorf("bob describes alice's volume: %s", r.code)
	}
	// Creating: not deletable yet; available: deletable; attached: in use.
	wantErr("IncorrectState", "Action", "DeleteVolume", "VolumeId", v.ID)
	set := func(fn func(*volumes.Volume)) {
		e.db.Commit(func(tx *store.Tx) error {
			vol, _ := volumes.Get(tx, v.ID)
			fn(&vol)
			return volumes.Put(tx, vol)
		})
	}
	set(func(vol *volumes.Volume) {
		vol.State = volumes.InUse
		vol.Attachment = &volumes.Attachment{Instance: "i-0000000a", Device: "/dev/sdf", State: "attached", Time: time.Now()}
	})
	wantErr("VolumeInUse", "Action", "DeleteVolume", "VolumeId", v.ID)
	if got := describe("Filter.1.Name", "attachment.instance-id", "Filter.1.Value.1", "i-0000000a"); len(got) != 1 || got[0].Status != "in-use" {
		t.Errorf("by attachment: %+v", got)
	}
	set(func(vol *volumes.Volume) { vol.State, vol.Attachment = volumes.Available, nil })
	if r := e.call(e.bob, q("Action", "DeleteVolume", "VolumeId", v.ID), time.Time{}); r.code != "InvalidVolume.NotFound" {
		t.Errorf("bob deletes alice's volume: %s", r.code)
	}
	e.ok(e.alice, q("Action", "DeleteVolume", "VolumeId", v.ID))
	if got := describe(); len(got) != 1 || got[0].Status != "deleting" {
		t.Errorf("after delete: %+v", got)
	}
	var st struct {
		Items []struct {
			ID     string `xml:"volumeId"`
			Status string `xml:"volumeStatus>status"`
		} `xml:"volumeStatusSet>item"`
	}
	xml.Unmarshal([]byte(e.ok(e.alice, q("Action", "DescribeVolumeStatus"))), &st)
	if len(st.Items) != 1 || st.Items[0].Status != "insufficient-data" {
		t.Errorf("volume status: %+v", st)
	}
}
