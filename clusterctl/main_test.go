package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNodeVerbsWithoutDaemon(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	data, _ := json.Marshal(map[string]string{"zone": "z1", "data_dir": filepath.Join(dir, "data")})
	if err := os.WriteFile(cfg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"node", "register", "n1", "http://127.0.0.1:1", "-config", cfg}, &out, &errOut); code != 0 {
		t.Fatalf("register: %d %s", code, errOut.String())
	}
	out.Reset()
	if code := run(ctx, []string{"node", "list", "-config", cfg}, &out, &errOut); code != 0 {
		t.Fatalf("list: %d %s", code, errOut.String())
	}
	var nodes []struct{ Name, URL, State string }
	if err := json.Unmarshal(out.Bytes(), &nodes); err != nil || len(nodes) != 1 || nodes[0].Name != "n1" || nodes[0].State != "DOWN" {
		t.Fatalf("list: %v %s", err, out.String())
	}
	if code := run(ctx, []string{"node", "deregister", "n1", "-config", cfg}, &out, &errOut); code != 0 {
		t.Fatalf("deregister: %d %s", code, errOut.String())
	}
	errOut.Reset()
	if code := run(ctx, []string{"node", "deregister", "n1", "-config", cfg}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "no such node") {
		t.Fatalf("deregister again: %d %s", code, errOut.String())
	}
	errOut.Reset()
	if code := run(ctx, []string{"node", "frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage:") {
		t.Fatalf("bad verb: %d %s", code, errOut.String())
	}
}
