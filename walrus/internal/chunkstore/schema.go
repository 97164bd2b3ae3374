package chunkstore

import (
	"errors"
	"time"

	"github.com/koala-cloud/koala/pkg/store"
)

// The bbolt buckets of a chunk store.
const (
	bktChunks    = "chunks"       // sha256 hex -> chunk
	bktUnref     = "unreferenced" // sha256 hex -> empty: chunks with refs 0, for the sweep
	bktManifests = "manifests"    // snapshot id -> api.SnapshotManifest
	bktTotals    = "totals"       // totalsKey -> totals
)

var schema = store.Schema{
	Version: 1,
	Buckets: []string{bktChunks, bktUnref, bktManifests, bktTotals},
}

var totalsKey = []byte("totals")

// chunk is a stored chunk's record.
type chunk struct {
	Size int64 `json:"size"`
	// Refs counts the manifests that name the chunk.
	Refs int `json:"refs"`
	// Created is when the chunk was stored or, while Refs is 0, last put
	// again: the sweep counts its grace from there.
	Created time.Time `json:"created"`
}

// totals is what the store holds, kept up to date by every transaction
// and recomputed by Open.
type totals struct {
	Chunks    int   `json:"chunks"`
	Bytes     int64 `json:"bytes"`
	Manifests int   `json:"manifests"`
}

func getTotals(tx *store.Tx) (totals, error) {
	var t totals
	err := tx.Get(bktTotals, totalsKey, &t)
	if errors.Is(err, store.ErrNotFound) {
		err = nil
	}
	return t, err
}

func putTotals(tx *store.Tx, t totals) error { return tx.Put(bktTotals, totalsKey, t) }

// addTotals adds d to the stored totals.
func addTotals(tx *store.Tx, d totals) error {
	if d == (totals{}) {
		return nil
	}
	t, err := getTotals(tx)
	if err != nil {
		return err
	}
	t.Chunks += d.Chunks
	t.Bytes += d.Bytes
	t.Manifests += d.Manifests
	return putTotals(tx, t)
}
