package chunkapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/walrus/internal/chunkstore"
)

func sumOf(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func manifestJSON(id string, sums ...string) string {
	m := api.SnapshotManifest{ID: id, VolumeID: "vol-00000001", SizeGiB: 1, ChunkSize: api.SnapshotChunkSize}
	for i, s := range sums {
		m.Chunks = append(m.Chunks, api.SnapshotChunk{Index: int64(i), SHA256: s})
	}
	data, _ := json.Marshal(m)
	return string(data)
}

// TestCalls drives the handler, unsigned, through each call and the error
// each refusal maps to.
func TestCalls(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	st, err := chunkstore.Open(t.TempDir(), log, chunkstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(New(st, log))
	t.Cleanup(srv.Close)

	a, b := []byte("chunk a"), []byte("chunk b")
	tooBig := make([]byte, api.SnapshotChunkSize+1)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string // of an error; else a substring of the body
		length                   string // Content-Length wanted, if any
	}{
		{"put a", "PUT", api.PathChunks + sumOf(a), string(a), 200, "{}", ""},
		{"put a again", "PUT", api.PathChunks + sumOf(a), string(a), 200, "{}", ""},
		{"bad digest", "PUT", api.PathChunks + sumOf(b), "not b", 400, "BadDigest", ""},
		{"too large", "PUT", api.PathChunks + sumOf(tooBig), string(tooBig), 400, "EntityTooLarge", ""},
		{"bad name", "PUT", api.PathChunks + "ABC", "x", 400, "InvalidParameterValue", ""},
		{"get a", "GET", api.PathChunks + sumOf(a), "", 200, string(a), "7"},
		{"head a", "HEAD", api.PathChunks + sumOf(a), "", 200, "", "7"},
		{"get b", "GET", api.PathChunks + sumOf(b), "", 404, "NoSuchKey", ""},
		{"head b", "HEAD", api.PathChunks + sumOf(b), "", 404, "", ""},
		{"missing chunk", "PUT", api.PathSnapshotManifests + "snap-00000001", manifestJSON("snap-00000001", sumOf(a), sumOf(b)), 409, "IncorrectState", ""},
		{"bad manifest", "PUT", api.PathSnapshotManifests + "snap-00000001", `{"id":"snap-00000001","size_gib":1}`, 400, "InvalidParameterValue", ""},
		{"not json", "PUT", api.PathSnapshotManifests + "snap-00000001", `{`, 400, "MalformedRequest", ""},
		{"other id", "PUT", api.PathSnapshotManifests + "snap-00000002", manifestJSON("snap-00000001", sumOf(a)), 400, "InvalidParameterValue", ""},
		{"put manifest", "PUT", api.PathSnapshotManifests + "snap-00000001", manifestJSON("snap-00000001", sumOf(a)), 200, "{}", ""},
		{"put again", "PUT", api.PathSnapshotManifests + "snap-00000001", manifestJSON("snap-00000001", sumOf(a)), 200, "{}", ""},
		{"put another", "PUT", api.PathSnapshotManifests + "snap-00000001", manifestJSON("snap-00000001", sumOf(a), sumOf(a)), 409, "IdempotentParameterMismatch", ""},
		{"get manifest", "GET", api.PathSnapshotManifests + "snap-00000001", "", 200, sumOf(a), ""},
		{"stats", "GET", api.PathChunks, "", 200, `{"chunks":1,"bytes":7,"manifests":1}`, ""},
		{"delete", "DELETE", api.PathSnapshotManifests + "snap-00000001", "", 200, "{}", ""},
		{"delete again", "DELETE", api.PathSnapshotManifests + "snap-00000001", "", 200, "{}", ""},
		{"get deleted", "GET", api.PathSnapshotManifests + "snap-00000001", "", 404, "InvalidSnapshot.NotFound", ""},
		{"freed", "GET", api.PathChunks + sumOf(a), "", 404, "NoSuchKey", ""},
		{"bad id", "GET", api.PathSnapshotManifests + "snap-x", "", 400, "InvalidParameterValue", ""},
		{"no such call", "POST", api.PathChunks + sumOf(a), "", 404, "InvalidAction", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
			}
			if tt.status != 200 && tt.method != "HEAD" {
				var e api.Error
				if err := json.Unmarshal(body, &e); err != nil || e.Code != tt.code {
					t.Fatalf("error %s, want code %s", body, tt.code)
				}
			} else if !bytes.Contains(body, []byte(tt.code)) {
				t.Fatalf("body %q lacks %q", body, tt.code)
			}
			if tt.length != "" && res.Header.Get("Content-Length") != tt.length {
				t.Fatalf("Content-Length %q, want %s", res.Header.Get("Content-Length"), tt.length)
			}
		})
	}
}
