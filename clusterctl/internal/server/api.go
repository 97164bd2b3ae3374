package server

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/koala-cloud/koala/clusterctl/internal/cluster"
	"github.com/koala-cloud/koala/clusterctl/internal/network"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sigv4"
)

// maxBody bounds a request body: a RunRequest of many instances with
// user data (16 KiB each) fits.
const maxBody = 64 << 20

// handler serves the internal API behind the signature guard, and the
// health check.
func handler(c *cluster.Cluster, verify *sigv4.Verifier, log *slog.Logger) http.Handler {
	a := &apiHandler{c: c, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathInstances, a.run)
	mux.HandleFunc("GET "+api.PathInstances, a.list)
	mux.HandleFunc("POST "+api.PathInstances+"/{id}/{verb}", a.act)
	mux.HandleFunc("GET "+api.PathInstances+"/{id}/console", a.console)
	mux.HandleFunc("POST "+api.PathResources, a.resources)
	mux.HandleFunc("POST "+api.PathNodes+"{name}/status", a.nodeStatus)
	mux.HandleFunc("PUT "+api.PathGroups, a.groups)
	mux.HandleFunc("PUT "+api.PathAddresses, a.addresses)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "InvalidAction", "no such internal call")
	})
	guarded := api.Guard(verify, mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == HealthPath && r.Method == http.MethodGet {
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		guarded.ServeHTTP(rec, r)
		code := rec.code
		if rec.status == http.StatusForbidden && code == "" {
			code = "AuthFailure"
		}
		// Node pushes and cloudctl's backstop polls come every few
		// seconds: they log at debug level unless they fail.
		level := slog.LevelInfo
		if rec.status == http.StatusOK && (r.Method == http.MethodGet || strings.HasPrefix(r.URL.Path, api.PathNodes)) {
			level = slog.LevelDebug
		}
		log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "code", code,
			"latency_ms", time.Since(start).Milliseconds())
	})
}

// recorder keeps a response's status and AWS code for the access log.
type recorder struct {
	http.ResponseWriter
	status int
	code   string
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	if rec, ok := w.(*recorder); ok {
		rec.code = code
	}
	api.WriteError(w, status, code, msg)
}

type apiHandler struct {
	c   *cluster.Cluster
	log *slog.Logger
}

// errorTable assigns AWS codes to the cluster's errors.
var errorTable = []api.ErrorRule{
	{Err: cluster.ErrNotFound, Status: http.StatusNotFound, Code: "InvalidInstanceID.NotFound"},
	{Err: cluster.ErrNoNode, Status: http.StatusNotFound, Code: "InvalidNode.NotFound"},
	{Err: cluster.ErrCapacity, Status: http.StatusServiceUnavailable, Code: "InsufficientInstanceCapacity"},
	{Err: cluster.ErrAddresses, Status: http.StatusServiceUnavailable, Code: "InsufficientFreeAddressesInSubnet"},
	{Err: cluster.ErrState, Status: http.StatusBadRequest, Code: "IncorrectInstanceState"},
	{Err: cluster.ErrInvalid, Status: http.StatusBadRequest, Code: "InvalidParameterValue"},
	{Err: cluster.ErrUnreachable, Status: http.StatusServiceUnavailable, Code: "Unavailable"},
}

// writeErr answers err: a node's own answer is passed through, the
// cluster's errors by the table, anything else as InternalError (the
// cause is logged).
func (a *apiHandler) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg, known := api.Classify(errorTable, err)
	if !known {
		a.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	fail(w, status, code, msg)
}

func (a *apiHandler) run(w http.ResponseWriter, r *http.Request) {
	var req api.RunRequest
	if !api.ReadJSON(w, r, maxBody, &req) {
		return
	}
	res, err := a.c.Run(r.Context(), req)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, res)
}

func (a *apiHandler) list(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, a.c.Instances())
}

func (a *apiHandler) act(w http.ResponseWriter, r *http.Request) {
	var req api.ActionRequest
	if r.ContentLength != 0 && !api.ReadJSON(w, r, 1<<16, &req) {
		return
	}
	st, err := a.c.Act(r.Context(), r.PathValue("id"), r.PathValue("verb"), req)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, st)
}

func (a *apiHandler) console(w http.ResponseWriter, r *http.Request) {
	out, err := a.c.Console(r.Context(), r.PathValue("id"))
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, out)
}

func (a *apiHandler) resources(w http.ResponseWriter, r *http.Request) {
	var req api.ResourcesRequest
	if !api.ReadJSON(w, r, 1<<20, &req) {
		return
	}
	api.WriteJSON(w, a.c.Resources(r.Context(), req))
}

func (a *apiHandler) nodeStatus(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var st api.NodeStatus
	if !api.ReadJSON(w, r, maxBody, &st) {
		return
	}
	if st.Name != "" && st.Name != name {
		fail(w, http.StatusBadRequest, "InvalidParameterValue", "the status names node "+st.Name+", not "+name)
		return
	}
	if err := a.c.Report(r.Context(), name, st); err != nil {
		if errors.Is(err, cluster.ErrNoNode) {
			a.log.Warn("status of an unregistered node", "node", name, "remote", r.RemoteAddr)
		}
		a.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, struct{}{})
}

// groups replaces the cluster's security groups: checked as the packet
// filter will enforce them, stored, and then handed to the network sync.
func (a *apiHandler) groups(w http.ResponseWriter, r *http.Request) {
	var req api.GroupsRequest
	if !api.ReadJSON(w, r, maxBody, &req) {
		return
	}
	if _, err := network.ParseGroups(req.Groups); err != nil {
		fail(w, http.StatusBadRequest, "InvalidParameterValue", err.Error())
		return
	}
	if err := a.c.SetGroups(r.Context(), req.Groups); err != nil {
		a.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, struct{}{})
}

// addresses replaces the cluster's public addresses: checked, stored, and
// then handed to the network sync.
func (a *apiHandler) addresses(w http.ResponseWriter, r *http.Request) {
	var req api.AddressesRequest
	if !api.ReadJSON(w, r, maxBody, &req) {
		return
	}
	if err := checkAddresses(req); err != nil {
		fail(w, http.StatusBadRequest, "InvalidParameterValue", err.Error())
		return
	}
	if err := a.c.SetAddresses(r.Context(), req); err != nil {
		a.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, struct{}{})
}
