package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sigv4"
)

func TestValidate(t *testing.T) {
	if err := Defaults().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := Defaults()
	bad.Listen, bad.Region, bad.MinPartSize, bad.Domains = "nowhere", "", 0, []string{"a/b"}
	err := bad.Validate()
	for _, want := range []string{"listen", "region", "min_part_size", "domain"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestServeAndClose(t *testing.T) {
	dir := t.TempDir()
	cfg := Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	cfg.AccountsFile = filepath.Join(dir, "accounts.json")
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-s.Ready()
	res, err := http.Get("http://" + s.Addr() + HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("health: %d %q", res.StatusCode, body)
	}
	// An anonymous S3 request reaches the API and is refused as S3 would.
	res, err = http.Get("http://" + s.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 403 || res.Header.Get("x-amz-request-id") == "" {
		t.Fatalf("anonymous list: %d", res.StatusCode)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-s.Done(); err != nil {
		t.Fatal(err)
	}
}

// fakeCloudctl answers access key lookups: AKIAEBS is ebs's component
// key, AKIAUSER an account's key.
func fakeCloudctl(t *testing.T) *httptest.Server {
	t.Helper()
	keys := map[string]api.AccessKey{
		"AKIAEBS":  {AccessKeyID: "AKIAEBS", SecretAccessKey: "ebs-secret", Active: true, Component: "ebs"},
		"AKIAUSER": {AccessKeyID: "AKIAUSER", SecretAccessKey: "user-secret", Active: true, Account: api.Account{ID: "123456789012"}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, ok := keys[strings.TrimPrefix(r.URL.Path, api.PathAccessKeys)]
		if !ok || !strings.HasPrefix(r.URL.Path, api.PathAccessKeys) {
			api.WriteError(w, http.StatusNotFound, "NoSuchEntity", "no such key")
			return
		}
		api.WriteJSON(w, k)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// startWithCloudctl runs a walrus in dir that works with a fake cloudctl.
func startWithCloudctl(t *testing.T, dir, cloudctl string) *Server {
	t.Helper()
	cfg := Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	cfg.CloudctlURL = cloudctl
	cfg.ComponentCredentials = filepath.Join(dir, "walrus-key.json")
	cred, _ := json.Marshal(api.Credentials{AccessKeyID: "AKIAWALRUS", SecretAccessKey: "walrus-secret"})
	if err := os.WriteFile(cfg.ComponentCredentials, cred, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-s.Ready()
	return s
}

func sumOf(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// TestSnapshotChunks drives the chunk calls as ebs would, through
// pkg/api's client signed with a component key.
func TestSnapshotChunks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cloud := fakeCloudctl(t)
	s := startWithCloudctl(t, dir, cloud.URL)
	c := &api.Client{BaseURL: "http://" + s.Addr(), AccessKeyID: "AKIAEBS", Secret: "ebs-secret"}

	a := bytes.Repeat([]byte("a"), api.SnapshotChunkSize)
	b := []byte("a short last chunk")
	if has, err := c.HasChunk(ctx, sumOf(a)); err != nil || has {
		t.Fatalf("HasChunk before put: %v %v", has, err)
	}
	for _, data := range [][]byte{a, b, a} {
		if err := c.PutChunk(ctx, sumOf(data), data); err != nil {
			t.Fatalf("PutChunk: %v", err)
		}
	}
	// The body does not match its name (nor the signed payload hash).
	if err := c.PutChunk(ctx, sumOf([]byte("x")), []byte("y")); api.Code(err) != "BadDigest" {
		t.Fatalf("PutChunk of a body that does not hash to its name: %v", err)
	}
	if has, err := c.HasChunk(ctx, sumOf(a)); err != nil || !has {
		t.Fatalf("HasChunk: %v %v", has, err)
	}
	buf := make([]byte, api.SnapshotChunkSize)
	if n, err := c.Chunk(ctx, sumOf(b), buf); err != nil || !bytes.Equal(buf[:n], b) {
		t.Fatalf("Chunk: %v %q", err, buf[:n])
	}
	if n, err := c.Chunk(ctx, sumOf(a), buf); err != nil || !bytes.Equal(buf[:n], a) {
		t.Fatalf("Chunk of a full chunk: %d %v", n, err)
	}

	m := api.SnapshotManifest{ID: "snap-0123456789abcdef0", VolumeID: "vol-0123456789abcdef0", SizeGiB: 1,
		ChunkSize: api.SnapshotChunkSize, Chunks: []api.SnapshotChunk{{Index: 0, SHA256: sumOf(a)},
			{Index: 3, SHA256: sumOf(a)}, {Index: 1023, SHA256: sumOf(b)}}}
	missing := m
	missing.ID = "snap-00000001"
	missing.Chunks = []api.SnapshotChunk{{Index: 0, SHA256: sumOf([]byte("x"))}}
	if err := c.PutSnapshotManifest(ctx, missing); api.Code(err) != "IncorrectState" {
		t.Fatalf("manifest naming a missing chunk: %v", err)
	}
	for range 2 {
		if err := c.PutSnapshotManifest(ctx, m); err != nil {
			t.Fatalf("PutSnapshotManifest: %v", err)
		}
	}
	got, err := c.SnapshotManifest(ctx, m.ID)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("SnapshotManifest: %v %+v", err, got)
	}
	want := api.ChunkStats{Chunks: 2, Bytes: int64(len(a) + len(b)), Manifests: 1}
	if st, err := c.ChunkStats(ctx); err != nil || st != want {
		t.Fatalf("ChunkStats: %v %+v, want %+v", err, st, want)
	}

	// Refused: unsigned (walrus takes it for S3), signed with a wrong
	// secret, signed with an account's key.
	z := []byte("z")
	req, _ := http.NewRequest(http.MethodPut, c.BaseURL+api.PathChunks+sumOf(z), bytes.NewReader(z))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if has, err := c.HasChunk(ctx, sumOf(z)); res.StatusCode == http.StatusOK || err != nil || has {
		t.Fatalf("unsigned put: %d, stored: %v %v", res.StatusCode, has, err)
	}
	for _, bad := range []*api.Client{
		{BaseURL: c.BaseURL, AccessKeyID: "AKIAEBS", Secret: "wrong"},
		{BaseURL: c.BaseURL, AccessKeyID: "AKIAUSER", Secret: "user-secret"},
		{BaseURL: c.BaseURL, AccessKeyID: "AKIANONE", Secret: "x"},
	} {
		if _, err := bad.ChunkStats(ctx); api.Code(err) != "AuthFailure" {
			t.Errorf("%s: %v", bad.AccessKeyID, err)
		}
	}
	req, _ = http.NewRequest(http.MethodGet, c.BaseURL+api.PathChunks, nil)
	if err := sigv4.Sign(req, "AKIAEBS", "ebs-secret", "internal", api.InternalService, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Date", time.Now().Add(-time.Hour).UTC().Format(sigv4.TimeFormat))
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("tampered request: %d", res.StatusCode)
	}

	// A restart keeps the snapshot.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = startWithCloudctl(t, dir, cloud.URL)
	defer s.Close()
	c.BaseURL = "http://" + s.Addr()
	if got, err := c.SnapshotManifest(ctx, m.ID); err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("SnapshotManifest after a restart: %v %+v", err, got)
	}

	if err := c.DeleteSnapshotManifest(ctx, m.ID); err != nil {
		t.Fatalf("DeleteSnapshotManifest: %v", err)
	}
	if err := c.DeleteSnapshotManifest(ctx, m.ID); err != nil {
		t.Fatalf("DeleteSnapshotManifest again: %v", err)
	}
	if _, err := c.SnapshotManifest(ctx, m.ID); !errors.Is(err, api.ErrNotFound) || api.Code(err) != "InvalidSnapshot.NotFound" {
		t.Fatalf("SnapshotManifest after delete: %v", err)
	}
	if has, err := c.HasChunk(ctx, sumOf(a)); err != nil || has {
		t.Fatalf("HasChunk after delete: %v %v", has, err)
	}
	if st, err := c.ChunkStats(ctx); err != nil || st != (api.ChunkStats{}) {
		t.Fatalf("ChunkStats after delete: %v %+v", err, st)
	}
}
