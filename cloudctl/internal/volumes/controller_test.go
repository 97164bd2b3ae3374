package volumes

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// fakeEBS answers the volume calls from a map; refuse, when set, answers
// creates with it. from records the snapshot each volume was created
// from.
type fakeEBS struct {
	mu      sync.Mutex
	vols    map[string]int
	from    map[string]string
	refuse  *api.Error
	deletes int
}

func (f *fakeEBS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := strings.TrimPrefix(r.URL.Path, api.PathVolumes)
	switch r.Method {
	case http.MethodPut:
		if f.refuse != nil {
			api.WriteError(w, http.StatusBadRequest, f.refuse.Code, f.refuse.Message)
			return
		}
		var req api.VolumeRequest
		json.NewDecoder(r.Body).Decode(&req)
		f.vols[id] = req.SizeGiB
		if req.SnapshotID != "" {
			f.from[id] = req.SnapshotID
		}
		api.WriteJSON(w, api.Volume{ID: id, SizeGiB: req.SizeGiB})
	case http.MethodDelete:
		f.deletes++
		if _, ok := f.vols[id]; !ok {
			api.WriteError(w, http.StatusNotFound, "InvalidVolume.NotFound", "no")
			return
		}
		delete(f.vols, id)
		api.WriteJSON(w, struct{}{})
	}
}

func TestControllerCreatesAndDeletes(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "c.db"), state.Schema, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ebs := &fakeEBS{vols: map[string]int{}, from: map[string]string{}}
	srv := httptest.NewServer(ebs)
	defer srv.Close()
	now := time.Now().UTC()
	put := func(vs ...Volume) {
		t.Helper()
		err := db.Commit(func(tx *store.Tx) error {
			for _, v := range vs {
				if err := Put(tx, v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	db.Commit(func(tx *store.Tx) error {
		clusters.Put(tx, clusters.Cluster{Zone: "z-a", URL: "http://127.0.0.1:1", EBS: srv.URL})
		clusters.Put(tx, clusters.Cluster{Zone: "z-none", URL: "http://127.0.0.1:1"})
		return clusters.Put(tx, clusters.Cluster{Zone: "z-down", URL: "http://127.0.0.1:1", EBS: "http://127.0.0.1:1"})
	})
	vol := func(id, zone, st string) Volume {
		return Volume{ID: id, Owner: "000000000001", Zone: zone, SizeGiB: 1, Type: "gp2", State: st, Created: now, Since: now}
	}
	restored := vol("vol-0000000e", "z-a", Creating)
	restored.SnapshotID = "snap-0000000a"
	put(vol("vol-0000000a", "z-a", Creating), vol("vol-0000000b", "z-none", Creating), vol("vol-0000000c", "z-down", Creating), restored)
	c := NewController(db, Config{CallTimeout: time.Second, Credentials: api.Credentials{AccessKeyID: "AKIDCLOUD", SecretAccessKey: "s"}},
		slog.New(slog.DiscardHandler))
	c.Reconcile(context.Background())
	get := func(id string) (Volume, error) {
		var v Volume
		err := db.View(func(tx *store.Tx) error { var err error; v, err = Get(tx, id); return err })
		return v, err
	}
	if v, _ := get("vol-0000000a"); v.State != Available || ebs.vols["vol-0000000a"] != 1 {
		t.Errorf("a: %+v, ebs has %v", v, ebs.vols)
	}
	if v, _ := get("vol-0000000e"); v.State != Available || ebs.from["vol-0000000e"] != "snap-0000000a" || ebs.from["vol-0000000a"] != "" {
		t.Errorf("from a snapshot: %+v, ebs made %v from snapshots", v, ebs.from)
	}
	if v, _ := get("vol-0000000b"); v.State != Error || v.Reason == "" {
		t.Errorf("a zone without ebs: %+v", v)
	}
	if v, _ := get("vol-0000000c"); v.State != Creating {
		t.Errorf("an unreachable ebs: %+v, want still creating", v)
	}
	c.now = func() time.Time { return now.Add(time.Hour) }
	c.Reconcile(context.Background())
	if v, _ := get("vol-0000000c"); v.State != Error || !strings.Contains(v.Reason, "could not be reached") {
		t.Errorf("an unreachable ebs after the timeout: %+v", v)
	}
	ebs.refuse = &api.Error{Code: "InsufficientVolumeCapacity", Message: "full"}
	put(vol("vol-0000000d", "z-a", Creating))
	c.Reconcile(context.Background())
	if v, _ := get("vol-0000000d"); v.State != Error || !strings.Contains(v.Reason, "InsufficientVolumeCapacity") {
		t.Errorf("a refused create: %+v", v)
	}

	// Deleting goes from ebs, then from the records; a volume ebs never
	// had goes too.
	put(vol("vol-0000000a", "z-a", Deleting), vol("vol-0000000d", "z-a", Deleting))
	c.Reconcile(context.Background())
	for _, id := range []string{"vol-0000000a", "vol-0000000d"} {
		if _, err := get(id); err == nil {
			t.Errorf("%s still recorded after its deletion", id)
		}
	}
	if _, kept := ebs.vols["vol-0000000e"]; !kept || len(ebs.vols) != 1 || ebs.deletes != 2 {
		t.Errorf("ebs has %v after %d deletes", ebs.vols, ebs.deletes)
	}
}

// fakeCluster answers instance actions: it records the verbs, and
// refuses them when refuse is set.
type fakeCluster struct {
	mu     sync.Mutex
	verbs  []string
	refuse bool
}

func (f *fakeCluster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var req api.ActionRequest
	json.NewDecoder(r.Body).Decode(&req)
	parts := strings.Split(r.URL.Path, "/")
	verb := parts[len(parts)-1]
	if req.Volume == nil {
		api.WriteError(w, http.StatusBadRequest, "InvalidParameterValue", "no volume")
		return
	}
	f.verbs = append(f.verbs, verb+" "+parts[len(parts)-2]+" "+req.Volume.VolumeID+" "+req.Volume.Device+" "+req.Volume.EBS)
	if f.refuse {
		api.WriteError(w, http.StatusConflict, "IncorrectInstanceState", "not running")
		return
	}
	api.WriteJSON(w, api.InstanceStatus{})
}

func TestControllerAttachesAndDetaches(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "c.db"), state.Schema, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ebs := &fakeEBS{vols: map[string]int{"vol-0000000a": 1}}
	ebsSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet:
			api.WriteJSON(w, api.Volume{ID: "vol-0000000a", Shelf: 2, Slot: 7, Allow: []string{"52:54:00:00:00:01"}})
		case r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/attachments/"):
			ebs.mu.Lock()
			ebs.deletes++
			ebs.mu.Unlock()
			api.WriteJSON(w, api.Volume{ID: "vol-0000000a"})
		default:
			ebs.ServeHTTP(w, r)
		}
	}))
	defer ebsSrv.Close()
	cl := &fakeCluster{}
	clSrv := httptest.NewServer(cl)
	defer clSrv.Close()
	db.Commit(func(tx *store.Tx) error {
		return clusters.Put(tx, clusters.Cluster{Zone: "z-a", URL: clSrv.URL, EBS: ebsSrv.URL})
	})
	now := time.Now().UTC()
	v := Volume{ID: "vol-0000000a", Owner: "000000000001", Zone: "z-a", SizeGiB: 1, Type: "gp2", State: Available, Created: now, Since: now}
	db.Commit(func(tx *store.Tx) error { return Put(tx, v) })
	c := NewController(db, Config{CallTimeout: time.Second, Credentials: api.Credentials{AccessKeyID: "AKIDCLOUD", SecretAccessKey: "s"}},
		slog.New(slog.DiscardHandler))
	get := func() Volume {
		var out Volume
		db.View(func(tx *store.Tx) error { var err error; out, err = Get(tx, v.ID); return err })
		return out
	}
	step := func(fn func(tx *store.Tx) error) {
		t.Helper()
		if err := db.Commit(fn); err != nil {
			t.Fatal(err)
		}
		c.Reconcile(context.Background())
	}

	step(func(tx *store.Tx) error {
		_, err := Attach(tx, v.Owner, v.ID, "i-00000001", "/dev/sdf", now)
		return err
	})
	if got := get(); got.State != InUse || got.Attachment == nil || got.Attachment.State != Attached {
		t.Fatalf("after attach: %+v", got)
	}
	if want := "attach-volume i-00000001 vol-0000000a vdf " + ebsSrv.URL; len(cl.verbs) != 1 || cl.verbs[0] != want {
		t.Fatalf("cluster got %q, want %q", cl.verbs, want)
	}
	step(func(tx *store.Tx) error { _, err := MarkDetaching(tx, v.Owner, v.ID, "", "", false, now); return err })
	if got := get(); got.State != Available || got.Attachment != nil {
		t.Fatalf("after detach: %+v", got)
	}
	// A refused attach ends detached by force: ebs lets no node use it.
	cl.refuse = true
	step(func(tx *store.Tx) error {
		_, err := Attach(tx, v.Owner, v.ID, "i-00000002", "/dev/sdg", now)
		return err
	})
	if got := get(); got.Attachment == nil || !got.Attachment.Force {
		t.Fatalf("after a refused attach: %+v", got)
	}
	c.Reconcile(context.Background())
	if got := get(); got.State != Available || got.Attachment != nil || ebs.deletes != 1 {
		t.Fatalf("after the forced detach: %+v, ebs disallowed %d MACs", got, ebs.deletes)
	}
	// An ended instance's volume goes the same way.
	cl.refuse = false
	step(func(tx *store.Tx) error {
		_, err := Attach(tx, v.Owner, v.ID, "i-00000003", "/dev/sdh", now)
		return err
	})
	step(func(tx *store.Tx) error { return InstanceEnded(tx, "i-00000003") })
	if got := get(); got.State != Available || got.Attachment != nil || ebs.deletes != 2 {
		t.Fatalf("after the instance ended: %+v, ebs disallowed %d MACs", got, ebs.deletes)
	}
}
