package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
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
