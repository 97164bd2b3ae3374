package ec2api

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/admin"
	"github.com/koala-cloud/koala/cloudctl/internal/snapshots"
	"github.com/koala-cloud/koala/cloudctl/internal/volumes"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// fakeEBS answers ebs's snapshot calls from a map of jobs the test
// moves along, and says every volume is filled.
type fakeEBS struct {
	mu   sync.Mutex
	jobs map[string]*api.SnapshotJob
}

func (f *fakeEBS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := strings.CutPrefix(r.URL.Path, api.PathVolumes); ok {
		api.WriteJSON(w, api.Volume{ID: id, Filled: true})
		return
	}
	id := strings.TrimPrefix(r.URL.Path, api.PathSnapshots)
	job, ok := f.jobs[id]
	switch {
	case r.Method == http.MethodPut && !ok:
		var req api.SnapshotRequest
		json.NewDecoder(r.Body).Decode(&req)
		job = &api.SnapshotJob{ID: id, VolumeID: req.VolumeID, State: api.SnapshotPending}
		f.jobs[id] = job
	case !ok:
		api.WriteError(w, http.StatusNotFound, "InvalidSnapshot.NotFound", "no")
		return
	}
	api.WriteJSON(w, job)
}

func (f *fakeEBS) set(id string, state string, progress int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[id].State, f.jobs[id].Progress = state, progress
}

type snapshotDoc struct {
	ID          string `xml:"snapshotId"`
	VolumeID    string `xml:"volumeId"`
	Status      string `xml:"status"`
	StartTime   string `xml:"startTime"`
	Progress    string `xml:"progress"`
	OwnerID     string `xml:"ownerId"`
	VolumeSize  int    `xml:"volumeSize"`
	Description string `xml:"description"`
	Encrypted   string `xml:"encrypted"`
	Tags        []struct {
		Key   string `xml:"key"`
		Value string `xml:"value"`
	} `xml:"tagSet>item"`
}

func TestSnapshotActions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ebs := &fakeEBS{jobs: map[string]*api.SnapshotJob{}}
	ebsSrv := httptest.NewServer(ebs)
	t.Cleanup(ebsSrv.Close)
	if err := e.svc.RegisterCluster(ctx, "us-east-1a", "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetClusterEBS(ctx, "us-east-1a", ebsSrv.URL); err != nil {
		t.Fatal(err)
	}
	walrus := &fakeWalrus{}
	ctl := snapshots.NewController(e.db, snapshots.Config{CallTimeout: time.Second,
		Credentials: api.Credentials{AccessKeyID: "AKIDCLOUD", SecretAccessKey: "s"}}, walrus, slog.New(slog.DiscardHandler))
	alice, bob := e.alice.AccountID, e.bob.AccountID

	wantErr := func(cred admin.Credential, code string, kv ...string) {
		t.Helper()
		if r := e.call(cred, q(kv...), time.Time{}); r.code != code {
			t.Errorf("%v: %d %s, want %s\n%s", kv, r.status, r.code, code, r.body)
		}
	}
	a, b := e.alice, e.bob
	volume := func(cred admin.Credential, kv ...string) volumeXMLDoc {
		t.Helper()
		var v volumeXMLDoc
		xml.Unmarshal([]byte(e.ok(cred, q(append([]string{"Action", "CreateVolume", "AvailabilityZone", "us-east-1a"}, kv...)...))), &v)
		return v
	}
	setVolume := func(id, state string) {
		t.Helper()
		err := e.db.Commit(func(tx *store.Tx) error {
			v, err := volumes.Get(tx, id)
			if err != nil {
				return err
			}
			v.State = state
			return volumes.Put(tx, v)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	vol := volume(a, "Size", "2")
	creating := volume(a, "Size", "1")
	setVolume(vol.ID, volumes.Available)

	wantErr(a, "MissingParameter", "Action", "CreateSnapshot")
	wantErr(a, "InvalidVolumeID.Malformed", "Action", "CreateSnapshot", "VolumeId", "volume-1")
	wantErr(b, "InvalidVolume.NotFound", "Action", "CreateSnapshot", "VolumeId", vol.ID)
	wantErr(a, "IncorrectState", "Action", "CreateSnapshot", "VolumeId", creating.ID)
	wantErr(a, "InvalidParameterValue", "Action", "CreateSnapshot", "VolumeId", vol.ID, "TagSpecification.1.ResourceType", "volume",
		"TagSpecification.1.Tag.1.Key", "k")
	wantErr(a, "InvalidParameterValue", "Action", "CreateSnapshot", "VolumeId", vol.ID, "Description", strings.Repeat("x", 256))
	wantErr(a, "DryRunOperation", "Action", "CreateSnapshot", "VolumeId", vol.ID, "DryRun", "true")

	// Create: pending at once, with the volume's size and the tags.
	var snap snapshotDoc
	body := e.ok(e.alice, q("Action", "CreateSnapshot", "VolumeId", vol.ID, "Description", "nightly backup",
		"TagSpecification.1.ResourceType", "snapshot", "TagSpecification.1.Tag.1.Key", "Name", "TagSpecification.1.Tag.1.Value", "db"))
	xml.Unmarshal([]byte(body), &snap)
	if !regexp.MustCompile(`^snap-[0-9a-f]{17}$`).MatchString(snap.ID) || snap.VolumeID != vol.ID || snap.Status != "pending" ||
		snap.VolumeSize != 2 || snap.OwnerID != alice || snap.Progress != "0%" || snap.Description != "nightly backup" ||
		snap.Encrypted != "false" || snap.StartTime == "" || len(snap.Tags) != 1 {
		t.Fatalf("created %+v\n%s", snap, body)
	}
	wantErr(a, "SnapshotCreationPerVolumeRateExceeded", "Action", "CreateSnapshot", "VolumeId", vol.ID)
	wantErr(a, "IncorrectState", "Action", "DeleteSnapshot", "SnapshotId", snap.ID)
	wantErr(a, "IncorrectState", "Action", "CreateVolume", "AvailabilityZone", "us-east-1a", "SnapshotId", snap.ID)

	describe := func(cred admin.Credential, kv ...string) []snapshotDoc {
		t.Helper()
		var doc struct {
			Snapshots []snapshotDoc `xml:"snapshotSet>item"`
		}
		xml.Unmarshal([]byte(e.ok(cred, q(append([]string{"Action", "DescribeSnapshots"}, kv...)...))), &doc)
		return doc.Snapshots
	}
	// The controller starts the job and follows it to completion.
	ctl.Reconcile(ctx)
	if _, ok := ebs.jobs[snap.ID]; !ok {
		t.Fatalf("ebs has no job for %s", snap.ID)
	}
	ebs.set(snap.ID, api.SnapshotPending, 40)
	ctl.Reconcile(ctx)
	if got := describe(a, "SnapshotId.1", snap.ID); len(got) != 1 || got[0].Status != "pending" || got[0].Progress != "40%" {
		t.Errorf("at 40%%: %+v", got)
	}
	ebs.set(snap.ID, api.SnapshotCompleted, 100)
	ctl.Reconcile(ctx)
	if got := describe(a, "SnapshotId.1", snap.ID); len(got) != 1 || got[0].Status != "completed" || got[0].Progress != "100%" {
		t.Errorf("completed: %+v", got)
	}

	// Filters, owners and restorable-by.
	for _, tc := range []struct {
		name string
		kv   []string
		want int
	}{
		{"all", nil, 1},
		{"status", []string{"Filter.1.Name", "status", "Filter.1.Value.1", "completed"}, 1},
		{"other status", []string{"Filter.1.Name", "status", "Filter.1.Value.1", "pending"}, 0},
		{"volume", []string{"Filter.1.Name", "volume-id", "Filter.1.Value.1", vol.ID}, 1},
		{"size and progress", []string{"Filter.1.Name", "volume-size", "Filter.1.Value.1", "2", "Filter.2.Name", "progress",
			"Filter.2.Value.1", "100%"}, 1},
		{"description wildcard", []string{"Filter.1.Name", "description", "Filter.1.Value.1", "nightly*"}, 1},
		{"tag", []string{"Filter.1.Name", "tag:Name", "Filter.1.Value.1", "db"}, 1},
		{"tag key", []string{"Filter.1.Name", "tag-key", "Filter.1.Value.1", "Other"}, 0},
		{"owner-id", []string{"Filter.1.Name", "owner-id", "Filter.1.Value.1", alice}, 1},
		{"start-time", []string{"Filter.1.Name", "start-time", "Filter.1.Value.1", snap.StartTime}, 1},
		{"Owner self", []string{"Owner.1", "self"}, 1},
		{"Owner by ID", []string{"Owner.1", alice}, 1},
		{"Owner amazon", []string{"Owner.1", "amazon"}, 0},
		{"RestorableBy self", []string{"RestorableBy.1", "self"}, 1},
		{"RestorableBy bob", []string{"RestorableBy.1", bob}, 0},
		{"RestorableBy all", []string{"RestorableBy.1", "all"}, 0},
		{"paged", []string{"MaxResults", "5"}, 1},
	} {
		if got := describe(a, tc.kv...); len(got) != tc.want {
			t.Errorf("%s: %d snapshots, want %d: %+v", tc.name, len(got), tc.want, got)
		}
	}
	wantErr(a, "InvalidParameterValue", "Action", "DescribeSnapshots", "Filter.1.Name", "flavour", "Filter.1.Value.1", "x")
	wantErr(a, "InvalidSnapshotID.Malformed", "Action", "DescribeSnapshots", "SnapshotId.1", "snapshot-1")
	wantErr(a, "InvalidParameterCombination", "Action", "DescribeSnapshots", "SnapshotId.1", snap.ID, "MaxResults", "5")
	r := e.call(e.alice, q("Action", "DescribeSnapshots", "SnapshotId.1", "snap-00000000000000001"), time.Time{})
	var msg struct {
		Message string `xml:"Errors>Error>Message"`
	}
	xml.Unmarshal([]byte(r.body), &msg)
	if r.code != "InvalidSnapshot.NotFound" || msg.Message != "The snapshot 'snap-00000000000000001' does not exist." {
		t.Errorf("an unknown snapshot: %s", r.body)
	}

	// Attributes: private at first; bob neither sees nor uses it.
	perms := func(cred admin.Credential) []permissionItem {
		t.Helper()
		var doc struct {
			ID    string           `xml:"snapshotId"`
			Perms []permissionItem `xml:"createVolumePermission>item"`
		}
		xml.Unmarshal([]byte(e.ok(cred, q("Action", "DescribeSnapshotAttribute", "SnapshotId", snap.ID, "Attribute", "createVolumePermission"))), &doc)
		if doc.ID != snap.ID {
			t.Errorf("attribute of %q", doc.ID)
		}
		return doc.Perms
	}
	if got := perms(a); len(got) != 0 {
		t.Errorf("a new snapshot's permission: %+v", got)
	}
	e.ok(e.alice, q("Action", "DescribeSnapshotAttribute", "SnapshotId", snap.ID, "Attribute", "productCodes"))
	wantErr(a, "InvalidParameterValue", "Action", "DescribeSnapshotAttribute", "SnapshotId", snap.ID, "Attribute", "kernel")
	wantErr(a, "MissingParameter", "Action", "DescribeSnapshotAttribute", "SnapshotId", snap.ID)
	if got := describe(b); len(got) != 0 {
		t.Errorf("bob sees %+v", got)
	}
	wantErr(b, "InvalidSnapshot.NotFound", "Action", "DescribeSnapshots", "SnapshotId.1", snap.ID)
	wantErr(b, "InvalidSnapshot.NotFound", "Action", "DescribeSnapshotAttribute", "SnapshotId", snap.ID, "Attribute", "createVolumePermission")
	wantErr(b, "InvalidSnapshot.NotFound", "Action", "CreateVolume", "AvailabilityZone", "us-east-1a", "SnapshotId", snap.ID)
	wantErr(b, "InvalidSnapshot.NotFound", "Action", "DeleteSnapshot", "SnapshotId", snap.ID)
	wantErr(b, "InvalidSnapshot.NotFound", "Action", "ModifySnapshotAttribute", "SnapshotId", snap.ID,
		"OperationType", "add", "UserGroup.1", "all")

	// Shared with bob: he sees it (without alice's tags), may restore it,
	// but not change or delete it.
	wantErr(a, "InvalidParameterValue", "Action", "ModifySnapshotAttribute", "SnapshotId", snap.ID, "Attribute", "productCodes",
		"OperationType", "add", "UserId.1", bob)
	wantErr(a, "MissingParameter", "Action", "ModifySnapshotAttribute", "SnapshotId", snap.ID, "UserId.1", bob)
	wantErr(a, "MissingParameter", "Action", "ModifySnapshotAttribute", "SnapshotId", snap.ID, "Attribute", "createVolumePermission")
	wantErr(a, "InvalidParameterValue", "Action", "ModifySnapshotAttribute", "SnapshotId", snap.ID, "OperationType", "add", "UserGroup.1", "friends")
	e.ok(e.alice, q("Action", "ModifySnapshotAttribute", "SnapshotId", snap.ID, "Attribute", "createVolumePermission",
		"OperationType", "add", "UserId.1", bob))
	if got := perms(a); len(got) != 1 || got[0].UserID != bob {
		t.Errorf("shared with bob: %+v", got)
	}
	if got := describe(b); len(got) != 1 || got[0].ID != snap.ID || len(got[0].Tags) != 0 || got[0].OwnerID != alice {
		t.Errorf("bob sees %+v", got)
	}
	for _, tc := range []struct {
		name string
		kv   []string
		want int
	}{
		{"RestorableBy self", []string{"RestorableBy.1", "self"}, 1},
		{"Owner self", []string{"Owner.1", "self"}, 0},
		{"Owner alice", []string{"Owner.1", alice}, 1},
	} {
		if got := describe(b, tc.kv...); len(got) != tc.want {
			t.Errorf("bob, %s: %d snapshots, want %d", tc.name, len(got), tc.want)
		}
	}
	if got := describe(a, "RestorableBy.1", bob); len(got) != 1 {
		t.Errorf("alice, restorable by bob: %+v", got)
	}
	for _, kv := range [][]string{
		{"Action", "DeleteSnapshot", "SnapshotId", snap.ID},
		{"Action", "ModifySnapshotAttribute", "SnapshotId", snap.ID, "OperationType", "add", "UserGroup.1", "all"},
		{"Action", "ResetSnapshotAttribute", "SnapshotId", snap.ID, "Attribute", "createVolumePermission"},
		{"Action", "DescribeSnapshotAttribute", "SnapshotId", snap.ID, "Attribute", "createVolumePermission"},
		{"Action", "CreateTags", "ResourceId.1", snap.ID, "Tag.1.Key", "mine", "Tag.1.Value", "x"},
	} {
		if r := e.call(e.bob, q(kv...), time.Time{}); r.code != "UnauthorizedOperation" || r.status != http.StatusForbidden {
			t.Errorf("bob %s: %d %s", kv[1], r.status, r.code)
		}
	}

	// Bob restores it: at its size by default, larger on request, never
	// smaller.
	wantErr(b, "InvalidParameterValue", "Action", "CreateVolume", "AvailabilityZone", "us-east-1a", "SnapshotId", snap.ID, "Size", "1")
	wantErr(b, "InvalidSnapshotID.Malformed", "Action", "CreateVolume", "AvailabilityZone", "us-east-1a", "SnapshotId", "snap-x")
	restored := volume(b, "SnapshotId", snap.ID)
	bigger := volume(b, "SnapshotId", snap.ID, "Size", "5")
	if restored.Size != 2 || bigger.Size != 5 {
		t.Errorf("restored at %d and %d GiB", restored.Size, bigger.Size)
	}
	var vols struct {
		Volumes []struct {
			ID       string `xml:"volumeId"`
			Snapshot string `xml:"snapshotId"`
		} `xml:"volumeSet>item"`
	}
	xml.Unmarshal([]byte(e.ok(e.bob, q("Action", "DescribeVolumes", "Filter.1.Name", "snapshot-id", "Filter.1.Value.1", snap.ID))), &vols)
	if len(vols.Volumes) != 2 || vols.Volumes[0].Snapshot != snap.ID {
		t.Errorf("bob's volumes from the snapshot: %+v", vols.Volumes)
	}

	// Unshared, then public in the other form of the call.
	e.ok(e.alice, q("Action", "ModifySnapshotAttribute", "SnapshotId", snap.ID, "CreateVolumePermission.Remove.1.UserId", bob))
	if got := describe(b); len(got) != 0 {
		t.Errorf("bob sees an unshared snapshot: %+v", got)
	}
	e.ok(e.alice, q("Action", "ModifySnapshotAttribute", "SnapshotId", snap.ID, "CreateVolumePermission.Add.1.Group", "all"))
	if got := perms(a); len(got) != 1 || got[0].Group != "all" {
		t.Errorf("public: %+v", got)
	}
	if got := describe(b); len(got) != 1 {
		t.Errorf("bob does not see a public snapshot: %+v", got)
	}
	if got := describe(b, "RestorableBy.1", "self"); len(got) != 0 {
		t.Errorf("bob, restorable by self, of a public snapshot: %+v", got)
	}
	if got := describe(a, "RestorableBy.1", "all"); len(got) != 1 {
		t.Errorf("alice, restorable by all: %+v", got)
	}
	e.ok(e.alice, q("Action", "ResetSnapshotAttribute", "SnapshotId", snap.ID, "Attribute", "createVolumePermission"))
	if got := describe(b); len(got) != 0 {
		t.Errorf("bob sees a reset snapshot: %+v", got)
	}

	// Tags like any resource's.
	e.ok(e.alice, q("Action", "CreateTags", "ResourceId.1", snap.ID, "Tag.1.Key", "tier", "Tag.1.Value", "gold"))
	var tagged struct {
		Tags []struct {
			ID   string `xml:"resourceId"`
			Type string `xml:"resourceType"`
		} `xml:"tagSet>item"`
	}
	xml.Unmarshal([]byte(e.ok(e.alice, q("Action", "DescribeTags", "Filter.1.Name", "resource-type", "Filter.1.Value.1", "snapshot"))), &tagged)
	if len(tagged.Tags) != 2 || tagged.Tags[0].ID != snap.ID {
		t.Errorf("snapshot tags: %+v", tagged.Tags)
	}

	// Delete: gone from Describe and DescribeTags at once; from walrus
	// once bob's volumes no longer need it.
	wantErr(a, "InvalidSnapshot.NotFound", "Action", "DeleteSnapshot", "SnapshotId", "snap-00000000000000001")
	wantErr(a, "InvalidSnapshotID.Malformed", "Action", "DeleteSnapshot", "SnapshotId", "vol-00000001")
	e.ok(e.alice, q("Action", "DeleteSnapshot", "SnapshotId", snap.ID))
	if got := describe(a); len(got) != 0 {
		t.Errorf("after delete: %+v", got)
	}
	wantErr(a, "InvalidSnapshot.NotFound", "Action", "DeleteSnapshot", "SnapshotId", snap.ID)
	tagged.Tags = nil
	xml.Unmarshal([]byte(e.ok(e.alice, q("Action", "DescribeTags", "Filter.1.Name", "resource-type", "Filter.1.Value.1", "snapshot"))), &tagged)
	if len(tagged.Tags) != 0 {
		t.Errorf("a deleted snapshot's tags: %+v", tagged.Tags)
	}
	recorded := func() bool {
		return e.db.View(func(tx *store.Tx) error { _, err := snapshots.Get(tx, snap.ID); return err }) == nil
	}
	ctl.Reconcile(ctx)
	if !recorded() || len(walrus.deletedSnapshot) != 0 {
		t.Errorf("deleted while bob's volumes are being created: walrus deleted %v", walrus.deletedSnapshot)
	}
	setVolume(restored.ID, volumes.Available)
	setVolume(bigger.ID, volumes.Available)
	ctl.Reconcile(ctx)
	if recorded() || strings.Join(walrus.deletedSnapshot, ",") != snap.ID {
		t.Errorf("after the volumes were made: recorded %v, walrus deleted %v", recorded(), walrus.deletedSnapshot)
	}
}
