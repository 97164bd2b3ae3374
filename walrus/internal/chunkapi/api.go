package chunkapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sigv4"
	"github.com/koala-cloud/koala/walrus/internal/chunkstore"
)

// maxManifest bounds a manifest's JSON: what api.Client reads back
// (about three million chunks, 3 TiB of data that is not zeros).
const maxManifest = 256 << 20

// Store is what the chunk calls need of the chunk store.
type Store interface {
	PutChunk(ctx context.Context, sum string, body io.Reader) (bool, error)
	Stat(ctx context.Context, sum string) (int64, error)
	OpenChunk(ctx context.Context, sum string) (*os.File, int64, error)
	Stats(ctx context.Context) (api.ChunkStats, error)
	PutManifest(ctx context.Context, m api.SnapshotManifest) error
	Manifest(ctx context.Context, id string) (api.SnapshotManifest, error)
	DeleteManifest(ctx context.Context, id string) error
}

// API serves the chunk calls.
type API struct {
	store Store
	log   *slog.Logger
	mux   *http.ServeMux
}

// New returns the chunk calls over st.
func New(st Store, log *slog.Logger) *API {
	a := &API{store: st, log: log, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET "+api.PathChunks+"{$}", a.stats)
	a.mux.HandleFunc("PUT "+api.PathChunks+"{sum}", a.putChunk)
	a.mux.HandleFunc("GET "+api.PathChunks+"{sum}", a.getChunk)
	a.mux.HandleFunc("HEAD "+api.PathChunks+"{sum}", a.headChunk)
	a.mux.HandleFunc("PUT "+api.PathSnapshotManifests+"{id}", a.putManifest)
	a.mux.HandleFunc("GET "+api.PathSnapshotManifests+"{id}", a.getManifest)
	a.mux.HandleFunc("DELETE "+api.PathSnapshotManifests+"{id}", a.deleteManifest)
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, http.StatusNotFound, "InvalidAction", "no such internal call")
	})
	return a
}

// ServeHTTP serves the chunk calls.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// errorTable assigns AWS codes to the chunk store's errors and to those
// of a signed body that does not match its x-amz-content-sha256.
var errorTable = []api.ErrorRule{
	{Err: chunkstore.ErrInvalid, Status: http.StatusBadRequest, Code: "InvalidParameterValue"},
	{Err: chunkstore.ErrBadDigest, Status: http.StatusBadRequest, Code: "BadDigest"},
	{Err: sigv4.ErrContentSHA256, Status: http.StatusBadRequest, Code: "BadDigest"},
	{Err: sigv4.ErrIncompleteBody, Status: http.StatusBadRequest, Code: "IncompleteBody"},
	{Err: chunkstore.ErrTooLarge, Status: http.StatusBadRequest, Code: "EntityTooLarge"},
	{Err: chunkstore.ErrChunkNotFound, Status: http.StatusNotFound, Code: "NoSuchKey"},
	{Err: chunkstore.ErrManifestNotFound, Status: http.StatusNotFound, Code: "InvalidSnapshot.NotFound"},
	{Err: chunkstore.ErrMissingChunk, Status: http.StatusConflict, Code: "IncorrectState"},
	{Err: chunkstore.ErrMismatch, Status: http.StatusConflict, Code: "IdempotentParameterMismatch"},
	{Err: context.DeadlineExceeded, Status: http.StatusBadRequest, Code: "RequestTimeout"},
}

func (a *API) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg, known := api.Classify(errorTable, err)
	if !known {
		a.log.Error("chunk call", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	api.WriteError(w, status, code, msg)
}

func (a *API) stats(w http.ResponseWriter, r *http.Request) {
	st, err := a.store.Stats(r.Context())
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, st)
}

func (a *API) putChunk(w http.ResponseWriter, r *http.Request) {
	sum := r.PathValue("sum")
	if r.ContentLength > api.SnapshotChunkSize {
		a.writeErr(w, r, fmt.Errorf("%w: chunk %s: %d bytes, at most %d", chunkstore.ErrTooLarge, sum, r.ContentLength, api.SnapshotChunkSize))
		return
	}
	if _, err := a.store.PutChunk(r.Context(), sum, r.Body); err != nil {
		a.writeErr(w, r, err)
		return
	}
	// A chunk stored already leaves its body unread: read it, bounded,
	// so that the connection can serve the next call.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, api.SnapshotChunkSize+1))
	api.WriteJSON(w, struct{}{})
}

func (a *API) getChunk(w http.ResponseWriter, r *http.Request) {
	sum := r.PathValue("sum")
	f, size, err := a.store.OpenChunk(r.Context(), sum)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("ETag", `"`+sum+`"`)
	if _, err := io.CopyN(w, f, size); err != nil {
		a.log.Warn("send chunk", "chunk", sum, "err", err)
	}
}

func (a *API) headChunk(w http.ResponseWriter, r *http.Request) {
	sum := r.PathValue("sum")
	size, err := a.store.Stat(r.Context(), sum)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("ETag", `"`+sum+`"`)
	w.WriteHeader(http.StatusOK)
}

func (a *API) putManifest(w http.ResponseWriter, r *http.Request) {
	var m api.SnapshotManifest
	if !api.ReadJSON(w, r, maxManifest, &m) {
		return
	}
	if id := r.PathValue("id"); m.ID != id {
		a.writeErr(w, r, fmt.Errorf("%w: manifest of %q put as %q", chunkstore.ErrInvalid, m.ID, id))
		return
	}
	if err := a.store.PutManifest(r.Context(), m); err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.log.Info("snapshot manifest committed", "snapshot_id", m.ID, "volume_id", m.VolumeID, "chunks", len(m.Chunks))
	api.WriteJSON(w, struct{}{})
}

func (a *API) getManifest(w http.ResponseWriter, r *http.Request) {
	m, err := a.store.Manifest(r.Context(), r.PathValue("id"))
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, m)
}

func (a *API) deleteManifest(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.store.DeleteManifest(r.Context(), id); err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.log.Info("snapshot manifest deleted", "snapshot_id", id)
	api.WriteJSON(w, struct{}{})
}
