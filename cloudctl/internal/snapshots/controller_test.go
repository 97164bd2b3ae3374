package snapshots

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/cloudctl/internal/volumes"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// fakeEBS answers the snapshot calls from a map of jobs, and volume
// reads from a map of whether each volume is filled; busy, when set,
// refuses new jobs as a volume already being snapshotted.
type fakeEBS struct {
	mu      sync.Mutex
	jobs    map[string]*api.SnapshotJob
	filled  map[string]bool
	busy    bool
	creates int
}

func (f *fakeEBS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := strings.CutPrefix(r.URL.Path, api.PathVolumes); ok {
		filled, known := f.filled[id]
		if !known {
			api.WriteError(w, http.StatusNotFound, "InvalidVolume.NotFound", "no")
			return
		}
		api.WriteJSON(w, api.Volume{ID: id, SnapshotID: "x", Filled: filled})
		return
	}
	id := strings.TrimPrefix(r.URL.Path, api.PathSnapshots)
	switch r.Method {
	case http.MethodPut:
		f.creates++
		if job, ok := f.jobs[id]; ok {
			api.WriteJSON(w, job)
			return
		}
		if f.busy {
			api.WriteError(w, http.StatusBadRequest, "SnapshotCreationPerVolumeRateExceeded", "busy")
			return
		}
		var req api.SnapshotRequest
		json.NewDecoder(r.Body).Decode(&req)
		if req.VolumeID == "vol-00000bad" {
			api.WriteError(w, http.StatusNotFound, "InvalidVolume.NotFound", "no such volume")
			return
		}
		f.jobs[id] = &api.SnapshotJob{ID: id, VolumeID: req.VolumeID, State: api.SnapshotPending}
		api.WriteJSON(w, f.jobs[id])
	case http.MethodGet:
		job, ok := f.jobs[id]
		if !ok {
			api.WriteError(w, http.StatusNotFound, "InvalidSnapshot.NotFound", "no")
			return
		}
		api.WriteJSON(w, job)
	}
}

func (f *fakeEBS) set(id string, fn func(j *api.SnapshotJob)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.jobs[id])
}

// fakeWalrus records manifest deletions; fail makes them fail.
type fakeWalrus struct {
	mu      sync.Mutex
	deleted []string
	fail    bool
}

func (f *fakeWalrus) DeleteSnapshotManifest(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("walrus down")
	}
	f.deleted = append(f.deleted, id)
	return nil
}

func TestControllerTakesSnapshots(t *testing.T) {
	db := openDB(t)
	ebs := &fakeEBS{jobs: map[string]*api.SnapshotJob{}, filled: map[string]bool{}}
	srv := httptest.NewServer(ebs)
	defer srv.Close()
	db.Commit(func(tx *store.Tx) error {
		clusters.Put(tx, clusters.Cluster{Zone: "z-a", URL: "http://127.0.0.1:1", EBS: srv.URL})
		clusters.Put(tx, clusters.Cluster{Zone: "z-none", URL: "http://127.0.0.1:1"})
		return clusters.Put(tx, clusters.Cluster{Zone: "z-down", URL: "http://127.0.0.1:1", EBS: "http://127.0.0.1:1"})
	})
	now := time.Now().UTC()
	snap := func(id, vol, zone string) Snapshot {
		return Snapshot{ID: id, Owner: alice, VolumeID: vol, VolumeSize: 1, Zone: zone, State: Pending, StartTime: now}
	}
	put := func(ss ...Snapshot) {
		t.Helper()
		err := db.Commit(func(tx *store.Tx) error {
			for _, s := range ss {
				if err := Put(tx, s); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	get := func(id string) Snapshot {
		t.Helper()
		var s Snapshot
		db.View(func(tx *store.Tx) error { var err error; s, err = Get(tx, id); return err })
		return s
	}
	walrus := &fakeWalrus{}
	c := NewController(db, Config{CallTimeout: time.Second, Credentials: api.Credentials{AccessKeyID: "AKIDCLOUD", SecretAccessKey: "s"}},
		walrus, slog.New(slog.DiscardHandler))
	put(snap("snap-0000000a", "vol-0000000a", "z-a"), snap("snap-0000000b", "vol-0000000b", "z-none"),
		snap("snap-0000000c", "vol-0000000c", "z-down"), snap("snap-0000000d", "vol-00000bad", "z-a"))
	if !c.reconcile(context.Background()) {
		t.Error("reconcile says nothing is pending")
	}
	if s := get("snap-0000000a"); s.State != Pending || s.Submitted.IsZero() || ebs.jobs["snap-0000000a"] == nil {
		t.Errorf("a: %+v, ebs has %v", s, ebs.jobs)
	}
	if s := get("snap-0000000b"); s.State != Error || s.StateMessage == "" {
		t.Errorf("a zone without ebs: %+v", s)
	}
	if s := get("snap-0000000c"); s.State != Pending {
		t.Errorf("an unreachable ebs: %+v, want still pending", s)
	}
	if s := get("snap-0000000d"); s.State != Error || !strings.Contains(s.StateMessage, "InvalidVolume.NotFound") {
		t.Errorf("a job ebs refused: %+v", s)
	}

	// Progress, then completion, are copied; a started job is polled, not
	// created again.
	ebs.set("snap-0000000a", func(j *api.SnapshotJob) { j.Progress = 42 })
	creates := ebs.creates
	c.Reconcile(context.Background())
	if s := get("snap-0000000a"); s.Progress != 42 || ebs.creates != creates {
		t.Errorf("at 42%%: %+v after %d creates", s, ebs.creates-creates)
	}
	ebs.set("snap-0000000a", func(j *api.SnapshotJob) { j.State, j.Progress = api.SnapshotCompleted, 99 })
	c.Reconcile(context.Background())
	if s := get("snap-0000000a"); s.State != Completed || s.Progress != 100 {
		t.Errorf("completed: %+v", s)
	}

	// A job that fails on ebs fails here with ebs's reason.
	put(snap("snap-0000000e", "vol-0000000e", "z-a"))
	c.Reconcile(context.Background())
	ebs.set("snap-0000000e", func(j *api.SnapshotJob) { j.State, j.Error = api.SnapshotError, "read error" })
	c.Reconcile(context.Background())
	if s := get("snap-0000000e"); s.State != Error || s.StateMessage != "read error" {
		t.Errorf("failed on ebs: %+v", s)
	}

	// A volume busy with another snapshot: the new one waits.
	ebs.busy = true
	put(snap("snap-0000000f", "vol-0000000a", "z-a"))
	c.Reconcile(context.Background())
	if s := get("snap-0000000f"); s.State != Pending || !s.Submitted.IsZero() {
		t.Errorf("waiting for the volume: %+v", s)
	}
	ebs.busy = false
	c.Reconcile(context.Background())
	if s := get("snap-0000000f"); s.Submitted.IsZero() {
		t.Errorf("not started once the volume is free: %+v", s)
	}

	// ebs forgets a started job: pending until the timeout, then error;
	// so does an ebs that stays unreachable.
	ebs.mu.Lock()
	delete(ebs.jobs, "snap-0000000f")
	ebs.mu.Unlock()
	c.Reconcile(context.Background())
	if s := get("snap-0000000f"); s.State != Pending {
		t.Errorf("lost a moment ago: %+v", s)
	}
	c.now = func() time.Time { return time.Now().Add(time.Hour) }
	if c.reconcile(context.Background()) {
		t.Error("reconcile says a snapshot is still pending")
	}
	if s := get("snap-0000000f"); s.State != Error || !strings.Contains(s.StateMessage, "lost") {
		t.Errorf("lost for an hour: %+v", s)
	}
	if s := get("snap-0000000c"); s.State != Error || !strings.Contains(s.StateMessage, "could not be reached") {
		t.Errorf("unreachable for an hour: %+v", s)
	}
}

func TestControllerDeletes(t *testing.T) {
	db := openDB(t)
	ebs := &fakeEBS{jobs: map[string]*api.SnapshotJob{}, filled: map[string]bool{"vol-0000000f": false}}
	srv := httptest.NewServer(ebs)
	defer srv.Close()
	now := time.Now().UTC()
	db.Commit(func(tx *store.Tx) error {
		clusters.Put(tx, clusters.Cluster{Zone: "z-a", URL: "http://127.0.0.1:1", EBS: srv.URL})
		Put(tx, Snapshot{ID: "snap-0000000a", Owner: alice, VolumeID: "vol-0000000a", Zone: "z-a", State: Deleting, StartTime: now})
		Put(tx, Snapshot{ID: "snap-0000000b", Owner: alice, VolumeID: "vol-0000000a", Zone: "z-a", State: Deleting, StartTime: now})
		// A volume still filling from b, and one that failed.
		volumes.Put(tx, volumes.Volume{ID: "vol-0000000f", Owner: bob, Zone: "z-a", SizeGiB: 1, SnapshotID: "snap-0000000b",
			State: volumes.Available, Created: now})
		return volumes.Put(tx, volumes.Volume{ID: "vol-0000000e", Owner: bob, Zone: "z-a", SizeGiB: 1, SnapshotID: "snap-0000000a",
			State: volumes.Error, Created: now})
	})
	walrus := &fakeWalrus{fail: true}
	c := NewController(db, Config{CallTimeout: time.Second, Credentials: api.Credentials{AccessKeyID: "AKIDCLOUD", SecretAccessKey: "s"}},
		walrus, slog.New(slog.DiscardHandler))
	exists := func(id string) bool {
		return db.View(func(tx *store.Tx) error { _, err := Get(tx, id); return err }) == nil
	}
	c.Reconcile(context.Background())
	if !exists("snap-0000000a") || !exists("snap-0000000b") {
		t.Fatal("records went while walrus failed")
	}
	walrus.fail = false
	c.Reconcile(context.Background())
	if exists("snap-0000000a") || !exists("snap-0000000b") || strings.Join(walrus.deleted, ",") != "snap-0000000a" {
		t.Errorf("after a pass: a %v, b %v, walrus deleted %v", exists("snap-0000000a"), exists("snap-0000000b"), walrus.deleted)
	}
	ebs.mu.Lock()
	ebs.filled["vol-0000000f"] = true
	ebs.mu.Unlock()
	c.Reconcile(context.Background())
	if exists("snap-0000000b") || strings.Join(walrus.deleted, ",") != "snap-0000000a,snap-0000000b" {
		t.Errorf("once the volume is filled: b %v, walrus deleted %v", exists("snap-0000000b"), walrus.deleted)
	}
}
