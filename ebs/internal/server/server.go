// Package server is the ebs daemon: the volumes store, the AoE target
// that serves every volume to the MACs it is attached to, and the
// internal API cloudctl and the nodes use.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/koala-cloud/koala/ebs/internal/volumes"
	"github.com/koala-cloud/koala/pkg/aoe"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/daemon"
	"github.com/koala-cloud/koala/pkg/sigv4"
	"github.com/koala-cloud/koala/pkg/store"
)

// HealthPath answers 200 without authentication, for readiness checks.
const HealthPath = "/_health"

// Server is an ebs daemon.
type Server struct {
	cfg    Config
	log    *slog.Logger
	db     *store.DB
	vols   *volumes.Store
	conn   aoe.Conn
	target *aoe.Target
	http   *http.Server
	ln     net.Listener
	done   chan error
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex // guards files
	files map[string]*os.File
}

// Deps are the server's collaborators; nil ones are the real ones.
type Deps struct {
	// Listen opens the AoE Conn on the configured interface.
	Listen func(ifname string) (aoe.Conn, error)
	// Verify checks internal calls' signatures.
	Verify *sigv4.Verifier
}

// New opens ebs's state and its AoE interface; Start serves them.
func New(cfg Config, log *slog.Logger) (*Server, error) { return NewWith(cfg, Deps{}, log) }

// NewWith is New with collaborators (for tests).
func NewWith(cfg Config, deps Deps, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if deps.Listen == nil {
		deps.Listen = func(ifname string) (aoe.Conn, error) { return aoe.ListenBlocking(ifname) }
	}
	if deps.Verify == nil {
		cred, err := api.LoadCredentials(cfg.ComponentCredentials)
		if err != nil {
			return nil, err
		}
		cloud := api.NewClient(cfg.CloudctlURL, cred, 30*time.Second)
		cloud.Region = cfg.Region
		deps.Verify = &sigv4.Verifier{Keys: &api.ComponentKeys{Lookup: cloud, TTL: 5 * time.Second}}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	db, err := store.Open(filepath.Join(cfg.DataDir, "ebs.db"), volumes.Schema, store.Options{})
	if err != nil {
		return nil, err
	}
	vols, err := volumes.Open(db, cfg.DataDir, cfg.Shelf, cfg.Shelves)
	if err != nil {
		db.Close()
		return nil, err
	}
	conn, err := deps.Listen(cfg.Interface)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, db: db, vols: vols, conn: conn, target: aoe.NewTarget(conn, cfg.Workers, log),
		done: make(chan error, 2), files: map[string]*os.File{}}
	s.http = &http.Server{Handler: s.handler(deps.Verify), ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	all, err := vols.List()
	if err == nil {
		for _, v := range all {
			if err = s.export(v); err != nil {
				break
			}
		}
	}
	if err != nil {
		conn.Close()
		s.closeState()
		return nil, err
	}
	return s, nil
}

// export serves v over AoE to its attachments.
func (s *Server) export(v volumes.Volume) error {
	f, err := os.OpenFile(s.vols.Path(v.ID), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.ID, err)
	}
	err = s.target.Add(aoe.Export{Shelf: v.Shelf, Slot: v.Slot, Sectors: v.Sectors(), Dev: f, Serial: v.ID,
		Model: "Koala EBS volume", Allow: v.MACs()})
	if err != nil {
		f.Close()
		return err
	}
	s.mu.Lock()
	s.files[v.ID] = f
	s.mu.Unlock()
	return nil
}

// unexport stops serving v and closes its file.
func (s *Server) unexport(v volumes.Volume) {
	s.target.Remove(v.Shelf, v.Slot)
	s.mu.Lock()
	f := s.files[v.ID]
	delete(s.files, v.ID)
	s.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

// Start serves the internal API and AoE.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.ln = ln
	daemon.Serve(s.http, ln, s.done)
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.wg.Go(func() {
		if err := s.target.Serve(ctx); err != nil && ctx.Err() == nil {
			s.done <- fmt.Errorf("aoe on %s: %w", s.cfg.Interface, err)
		}
	})
	n, _ := s.vols.List()
	s.log.Info("ebs serving", "addr", ln.Addr().String(), "interface", s.cfg.Interface,
		"mac", s.conn.HardwareAddr().String(), "mtu", s.conn.MTU(), "volumes", len(n))
	return nil
}

// Addr is the internal API's address, once started.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Done reports a serving loop's failure.
func (s *Server) Done() <-chan error { return s.done }

// Close stops serving, syncs and closes the volumes.
func (s *Server) Close() error {
	var errs []error
	if s.ln != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, s.http.Shutdown(sctx))
		cancel()
	}
	if s.cancel != nil {
		s.cancel()
	}
	errs = append(errs, s.conn.Close())
	s.wg.Wait()
	errs = append(errs, s.closeState())
	return errors.Join(errs...)
}

func (s *Server) closeState() error {
	var errs []error
	s.mu.Lock()
	for id, f := range s.files {
		if err := f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("volume %s: %w", id, err))
		}
		f.Close()
	}
	s.files = map[string]*os.File{}
	s.mu.Unlock()
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}
