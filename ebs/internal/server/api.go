package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/koala-cloud/koala/ebs/internal/snapshots"
	"github.com/koala-cloud/koala/ebs/internal/volumes"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sigv4"
)

// handler serves the internal API behind the signature guard, and the
// health check.
func (s *Server) handler(verify *sigv4.Verifier) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathVolumes, s.list)
	mux.HandleFunc("PUT "+api.PathVolumes+"{id}", s.create)
	mux.HandleFunc("GET "+api.PathVolumes+"{id}", s.get)
	mux.HandleFunc("DELETE "+api.PathVolumes+"{id}", s.delete)
	mux.HandleFunc("PUT "+api.PathVolumes+"{id}/attachments/{mac}", s.attach(true))
	mux.HandleFunc("DELETE "+api.PathVolumes+"{id}/attachments/{mac}", s.attach(false))
	mux.HandleFunc("PUT "+api.PathSnapshots+"{id}", s.withSnapshots(s.snapshot))
	mux.HandleFunc("GET "+api.PathSnapshots+"{id}", s.withSnapshots(s.getSnapshot))
	mux.HandleFunc("DELETE "+api.PathSnapshots+"{id}", s.withSnapshots(s.deleteSnapshot))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, http.StatusNotFound, "InvalidAction", "no such internal call")
	})
	guarded := api.Guard(verify, mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == HealthPath && r.Method == http.MethodGet {
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		start := time.Now()
		guarded.ServeHTTP(w, r)
		s.log.Info("request", "method", r.Method, "path", r.URL.Path, "latency_ms", time.Since(start).Milliseconds())
	})
}

// errorTable assigns AWS codes to the store's errors.
var errorTable = []api.ErrorRule{
	{Err: volumes.ErrNotFound, Status: http.StatusNotFound, Code: "InvalidVolume.NotFound"},
	{Err: volumes.ErrInUse, Status: http.StatusBadRequest, Code: "VolumeInUse"},
	{Err: volumes.ErrInvalid, Status: http.StatusBadRequest, Code: "InvalidParameterValue"},
	{Err: volumes.ErrMismatch, Status: http.StatusConflict, Code: "IdempotentParameterMismatch"},
	{Err: volumes.ErrFull, Status: http.StatusServiceUnavailable, Code: "InsufficientVolumeCapacity"},
	{Err: snapshots.ErrNotFound, Status: http.StatusNotFound, Code: "InvalidSnapshot.NotFound"},
	{Err: snapshots.ErrBusy, Status: http.StatusBadRequest, Code: "SnapshotCreationPerVolumeRateExceeded"},
	{Err: snapshots.ErrInvalid, Status: http.StatusBadRequest, Code: "InvalidParameterValue"},
	{Err: snapshots.ErrMismatch, Status: http.StatusConflict, Code: "IdempotentParameterMismatch"},
	{Err: errNoWalrus, Status: http.StatusServiceUnavailable, Code: "Unsupported"},
}

// errNoWalrus is a snapshot call to an ebs without walrus.
var errNoWalrus = errors.New("this ebs keeps no snapshots: walrus_url is not set")

func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg, known := api.Classify(errorTable, err)
	if !known {
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	api.WriteError(w, status, code, msg)
}

// info renders a volume for the API.
func (s *Server) info(v volumes.Volume) api.Volume {
	allow := v.Allow
	if allow == nil {
		allow = []string{}
	}
	return api.Volume{ID: v.ID, SizeGiB: v.SizeGiB, Shelf: v.Shelf, Slot: v.Slot, Target: s.conn.HardwareAddr().String(),
		Allow: allow, SnapshotID: v.SnapshotID, Filled: !v.Filling}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	all, err := s.vols.List()
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := api.Volumes{Volumes: []api.Volume{}}
	for _, v := range all {
		if !v.Deleting {
			out.Volumes = append(out.Volumes, s.info(v))
		}
	}
	api.WriteJSON(w, out)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	v, err := s.vols.Get(r.PathValue("id"))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, s.info(v))
}

// create makes the volume and serves it (to no one until attached). A
// repeat finds it served already.
func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var req api.VolumeRequest
	if !api.ReadJSON(w, r, 1<<16, &req) {
		return
	}
	id := r.PathValue("id")
	var (
		fill []byte
		src  *snapshots.Reader
	)
	if req.SnapshotID != "" {
		var err error
		if fill, src, err = s.fillFrom(r.Context(), req); err != nil {
			s.writeErr(w, r, err)
			return
		}
	}
	v, err := s.vols.Create(id, req.SizeGiB, req.SnapshotID, fill, time.Now())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if _, served := s.device(id); !served {
		if err := s.export(v, src); err != nil {
			s.writeErr(w, r, err)
			return
		}
		s.log.Info("volume created", "volume_id", id, "size_gib", v.SizeGiB, "shelf", v.Shelf, "slot", v.Slot,
			"snapshot_id", v.SnapshotID)
	}
	api.WriteJSON(w, s.info(v))
}

// fillFrom reads the manifest of the snapshot a volume is to start as
// and returns the volume's initial fill (a bit set for every chunk the
// snapshot has no data for) and the reader of the snapshot, which holds
// the manifest.
func (s *Server) fillFrom(ctx context.Context, req api.VolumeRequest) ([]byte, *snapshots.Reader, error) {
	if s.walrus == nil {
		return nil, nil, errNoWalrus
	}
	src := snapshots.NewReader(s.walrus, req.SnapshotID)
	m, err := src.Load(ctx)
	if errors.Is(err, api.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: The snapshot '%s' does not exist.", snapshots.ErrNotFound, req.SnapshotID)
	}
	if err != nil {
		return nil, nil, err
	}
	if m.SizeGiB > req.SizeGiB {
		return nil, nil, fmt.Errorf("%w: volume of %d GiB is too small for snapshot %s; minimum is %d GiB",
			snapshots.ErrInvalid, req.SizeGiB, req.SnapshotID, m.SizeGiB)
	}
	chunks := int64(req.SizeGiB) << 30 / api.SnapshotChunkSize
	fill := make([]byte, (chunks+7)/8)
	for i := range fill {
		fill[i] = 0xff
	}
	for _, c := range m.Chunks {
		if c.Index < 0 || c.Index >= chunks {
			return nil, nil, fmt.Errorf("snapshot %s: chunk %d beyond %d", req.SnapshotID, c.Index, chunks)
		}
		fill[c.Index/8] &^= 1 << (c.Index % 8)
	}
	return fill, src, nil
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if s.snaps != nil && s.snaps.Running(id) {
		s.writeErr(w, r, fmt.Errorf("%w: a snapshot of volume %s is in progress", volumes.ErrInUse, id))
		return
	}
	if err := s.vols.Delete(id, s.unexport); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.log.Info("volume deleted", "volume_id", id)
	api.WriteJSON(w, struct{}{})
}

// attach lets a MAC use a volume (allow) or stops it.
func (s *Server) attach(allow bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		v, err := s.vols.SetAllowed(id, r.PathValue("mac"), allow, func(v volumes.Volume) {
			s.target.SetAllow(v.Shelf, v.Slot, v.MACs())
		})
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		s.log.Info("volume attachments", "volume_id", id, "allow", v.Allow)
		api.WriteJSON(w, s.info(v))
	}
}

// withSnapshots serves h when this ebs keeps snapshots (it has walrus).
func (s *Server) withSnapshots(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.snaps == nil {
			s.writeErr(w, r, errNoWalrus)
			return
		}
		h(w, r)
	}
}

// snapshot starts a snapshot of a volume (a repeat reports it).
func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) {
	var req api.SnapshotRequest
	if !api.ReadJSON(w, r, 1<<16, &req) {
		return
	}
	v, err := s.vols.Get(req.VolumeID)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	dev, ok := s.device(v.ID)
	if !ok {
		s.writeErr(w, r, fmt.Errorf("%w: The volume '%s' does not exist.", volumes.ErrNotFound, v.ID))
		return
	}
	j, err := s.snaps.Start(r.PathValue("id"), v.ID, v.SizeGiB, dev)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, j)
}

func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request) {
	j, err := s.snaps.Get(r.PathValue("id"))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, j)
}

func (s *Server) deleteSnapshot(w http.ResponseWriter, r *http.Request) {
	if err := s.snaps.Delete(r.PathValue("id")); err != nil {
		s.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, struct{}{})
}
