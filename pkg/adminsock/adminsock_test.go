package adminsock

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var errMissing = errors.New("no such thing")

func TestSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	if err := os.WriteFile(path, nil, 0o644); err != nil { // a dead daemon's leftover
		t.Fatal(err)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	status := func(err error) int {
		if errors.Is(err, errMissing) {
			return http.StatusNotFound
		}
		return 0
	}
	reply := Replier(status, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Name string }
		if !Decode(w, r, &in) {
			return
		}
		reply(w, in, nil)
	})
	mux.HandleFunc("GET /missing", func(w http.ResponseWriter, r *http.Request) { reply(w, nil, errMissing) })
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) { reply(w, nil, errors.New("disk on fire")) })
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	ctx := context.Background()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Name string }
	if err := c.Call(ctx, http.MethodPost, "/echo", map[string]string{"Name": "n1"}, &out); err != nil || out.Name != "n1" {
		t.Fatalf("echo: %+v %v", out, err)
	}
	tests := []struct {
		name, method, path string
		in                 any
		want               string
	}{
		{"mapped error", http.MethodGet, "/missing", nil, "no such thing"},
		{"unexpected error", http.MethodGet, "/broken", nil, "disk on fire"},
		{"bad body", http.MethodPost, "/echo", []int{1}, "cannot unmarshal"},
		{"no route", http.MethodGet, "/nowhere", nil, "404 page not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Call(ctx, tc.method, tc.path, tc.in, &struct{}{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.HasSuffix(err.Error(), "\n") {
				t.Fatalf("err = %q, want %q", err, tc.want)
			}
		})
	}
}

func TestDialNoDaemon(t *testing.T) {
	if _, err := Dial(context.Background(), filepath.Join(t.TempDir(), "admin.sock")); err == nil {
		t.Fatal("dialled a socket nobody listens on")
	}
}
