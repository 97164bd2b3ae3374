package server

import (
	"net/http"
	"time"

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
}

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
		Allow: allow}
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
	v, err := s.vols.Create(id, req.SizeGiB, time.Now())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.mu.Lock()
	_, served := s.files[id]
	s.mu.Unlock()
	if !served {
		if err := s.export(v); err != nil {
			s.writeErr(w, r, err)
			return
		}
		s.log.Info("volume created", "volume_id", id, "size_gib", v.SizeGiB, "shelf", v.Shelf, "slot", v.Slot)
	}
	api.WriteJSON(w, s.info(v))
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
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
