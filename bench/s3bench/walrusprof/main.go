//go:build walrusprof

// Command walrusprof serves walrus in-process and lets s3bench take CPU
// profiles of it, one per workload, so that the profile holds the server's
// time and not the client's.
//
//	walrusprof -config FILE -debug ADDR
//
// ADDR serves net/http/pprof under /debug/pprof/, and POST /cpu/start and
// POST /cpu/stop, which answers with the profile since the start.
//
// It imports walrus/internal/server, which Go allows only to code below
// walrus/. So s3bench -profile builds it with -overlay as if it were
// walrus/internal/s3benchprof, and the walrusprof build tag keeps it out
// of every other build.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	rpprof "runtime/pprof"
	"sync"
	"syscall"

	"github.com/koala-cloud/koala/walrus/internal/server"
)

func main() {
	cfgPath := flag.String("config", "", "walrus configuration `file` (JSON)")
	debug := flag.String("debug", "127.0.0.1:6060", "`address` of the profiling endpoint")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, *cfgPath, *debug)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, cfgPath, debug string) int {
	cfg, err := server.Find(cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "walrusprof:", err)
		return 1
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "walrusprof: log_level:", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ln, err := net.Listen("tcp", debug)
	if err != nil {
		log.Error("listen", "addr", debug, "err", err)
		return 1
	}
	dbg := &http.Server{Handler: debugMux()}
	go func() { _ = dbg.Serve(ln) }()
	defer dbg.Close()

	srv, err := server.New(cfg, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	if err := srv.Start(ctx); err != nil {
		log.Error("start", "err", err)
		_ = srv.Close()
		return 1
	}
	select {
	case <-ctx.Done():
	case err := <-srv.Done():
		if err != nil {
			log.Error("serve", "err", err)
		}
	}
	if err := srv.Close(); err != nil {
		log.Error("stop", "err", err)
		return 1
	}
	return 0
}

// debugMux serves pprof and a CPU profile that runs from /cpu/start to
// /cpu/stop.
func debugMux() *http.ServeMux {
	var (
		mu  sync.Mutex
		buf *bytes.Buffer
	)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("POST /cpu/start", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if buf != nil {
			http.Error(w, "a profile is already running", http.StatusConflict)
			return
		}
		b := new(bytes.Buffer)
		if err := rpprof.StartCPUProfile(b); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		buf = b
	})
	mux.HandleFunc("POST /cpu/stop", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if buf == nil {
			http.Error(w, "no profile is running", http.StatusConflict)
			return
		}
		rpprof.StopCPUProfile()
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(buf.Bytes())
		buf = nil
	})
	return mux
}
