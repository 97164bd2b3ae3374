package server

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/koala-cloud/koala/nodectl/internal/node"
	nvolumes "github.com/koala-cloud/koala/nodectl/internal/volumes"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sigv4"
)

// HealthPath answers 200 without authentication, for readiness checks.
const HealthPath = "/_health"

// maxBody bounds a request body; an instance spec with 16 KiB of user
// data is far below it.
const maxBody = 1 << 20

// handler routes the API: the health check, and the internal calls behind
// the component-key signature check, all under the access log.
func (s *Server) handler() http.Handler {
	in := http.NewServeMux()
	in.HandleFunc("PUT "+api.PathInstances+"/{id}", s.launch)
	in.HandleFunc("POST "+api.PathInstances+"/{id}/{verb}", s.act)
	in.HandleFunc("GET "+api.PathInstances, s.instances)
	in.HandleFunc("GET "+api.PathInstances+"/{id}/console", s.console)
	in.HandleFunc("GET "+api.PathNode, s.node)
	in.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "InvalidAction", "no such internal call: "+r.Method+" "+r.URL.Path)
	})
	root := http.NewServeMux()
	root.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	root.Handle("/", limitBody(api.Guard(s.verifier, in)))
	return s.accessLog(root)
}

func (s *Server) launch(w http.ResponseWriter, r *http.Request) {
	var spec api.InstanceSpec
	if !readBody(w, r, &spec, false) {
		return
	}
	if id := r.PathValue("id"); spec.ID != id {
		writeError(w, http.StatusBadRequest, "InvalidParameterValue", "the path names instance "+id+", the body "+spec.ID)
		return
	}
	st, err := s.mgr.Launch(r.Context(), spec)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, st)
}

func (s *Server) act(w http.ResponseWriter, r *http.Request) {
	var req api.ActionRequest
	if !readBody(w, r, &req, true) {
		return
	}
	st, err := s.mgr.Act(r.Context(), r.PathValue("id"), r.PathValue("verb"), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, st)
}

func (s *Server) instances(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, s.mgr.Status().Instances)
}

func (s *Server) console(w http.ResponseWriter, r *http.Request) {
	out, err := s.mgr.Console(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, out)
}

func (s *Server) node(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, s.mgr.Status())
}

// errorCodes maps the manager's (and the volume attacher's) errors to
// the codes the API answers with.
var errorCodes = []api.ErrorRule{
	{Err: node.ErrInvalid, Status: http.StatusBadRequest, Code: "InvalidParameterValue"},
	{Err: node.ErrNotFound, Status: http.StatusNotFound, Code: "InvalidInstanceID.NotFound"},
	{Err: node.ErrState, Status: http.StatusConflict, Code: "IncorrectInstanceState"},
	{Err: nvolumes.ErrInvalid, Status: http.StatusBadRequest, Code: "InvalidParameterValue"},
	{Err: nvolumes.ErrNoNetwork, Status: http.StatusBadRequest, Code: "UnsupportedOperation"},
}

// fail answers a failed call; an error of no known kind is an
// InternalError whose cause is logged, not told.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg, known := api.Classify(errorCodes, err)
	if !known {
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, code, msg)
}

// writeError answers with an error and notes its code for the access log.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	if rec, ok := w.(*recorder); ok {
		rec.code = code
	}
	api.WriteError(w, status, code, msg)
}

// readBody reads a JSON body whole, so that the signature's payload hash
// is checked at its end, into v; an empty body is v's zero value when
// empty is true. On failure it has answered and returns false.
func readBody(w http.ResponseWriter, r *http.Request, v any, empty bool) bool {
	data, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "the body exceeds 1 MiB")
		return false
	case errors.Is(err, sigv4.ErrContentSHA256):
		writeError(w, http.StatusForbidden, "AuthFailure", "the body does not match its signature")
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "MalformedRequest", "reading the body: "+err.Error())
		return false
	case len(data) == 0 && empty:
		return true
	}
	if err := json.Unmarshal(data, v); err != nil {
		writeError(w, http.StatusBadRequest, "MalformedRequest", "bad request body: "+err.Error())
		return false
	}
	return true
}

// limitBody refuses bodies over maxBody, before the signature check
// buffers or hashes them.
func limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			writeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "the body exceeds 1 MiB")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h.ServeHTTP(w, r)
	})
}

// recorder notes what a handler answered, for the access log.
type recorder struct {
	http.ResponseWriter
	status int
	code   string
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// accessLog logs one line per request.
func (s *Server) accessLog(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if rec.status == http.StatusForbidden && rec.code == "" {
			rec.code = "AuthFailure" // answered by api.Guard
		}
		level := slog.LevelInfo
		if r.URL.Path == HealthPath {
			level = slog.LevelDebug
		}
		key, _ := credential(r)
		s.log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"code", rec.code, "caller", key, "latency_ms", time.Since(start).Milliseconds())
	})
}

// credential returns the access key and service of a request's SigV4
// credential scope (AKID/date/region/service/aws4_request), "" if none,
// for the access log.
func credential(r *http.Request) (key, service string) {
	cred := r.URL.Query().Get("X-Amz-Credential")
	if a := r.Header.Get("Authorization"); a != "" {
		_, cred, _ = strings.Cut(a, "Credential=")
		if i := strings.IndexAny(cred, ", "); i >= 0 {
			cred = cred[:i]
		}
	}
	parts := strings.Split(cred, "/")
	if len(parts) < 5 {
		return "", ""
	}
	return parts[0], parts[len(parts)-2]
}
