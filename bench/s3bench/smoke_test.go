package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestQuickSmoke runs the whole benchmark in -quick mode against a walrus
// it builds and starts. It takes tens of seconds, so it runs only with
// WALRUS_BENCH_SMOKE=1. It checks that every workload ran and the report
// was written, never how fast anything was.
func TestQuickSmoke(t *testing.T) {
	if os.Getenv("WALRUS_BENCH_SMOKE") != "1" {
		t.Skip("set WALRUS_BENCH_SMOKE=1 to run the quick benchmark against walrus")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "benchmarks.md")
	var log bytes.Buffer
	o := options{out: out, dir: filepath.Join(dir, "work"), quick: true, baseline: true, region: "us-east-1"}
	if code := run(context.Background(), o, &log); code != 0 {
		t.Fatalf("s3bench -quick exited %d:\n%s", code, log.String())
	}
	report, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"PUT 1 MiB objects, 16 clients", "GET 1 MiB objects, 1 client",
		"PUT 64 MiB objects, 4 clients", "GET 64 MiB objects, 1 client",
		"PUT 4 KiB objects, 16 clients", "GET 4 KiB objects", "HEAD 4 KiB objects", "LIST 4 KiB objects, 100 a page",
		"raw write + fsync", "Targets met:",
	} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(string(report), "errors)") {
		t.Errorf("some requests failed:\n%s", log.String())
	}
}
