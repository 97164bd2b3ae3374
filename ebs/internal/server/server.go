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
	"sync/atomic"
	"time"

	"github.com/koala-cloud/koala/ebs/internal/blockdev"
	"github.com/koala-cloud/koala/ebs/internal/snapshots"
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
	snaps  *snapshots.Maker // nil without walrus
	walrus Walrus
	conn   aoe.Conn
	target *aoe.Target
	http   *http.Server
	ln     net.Listener
	done   chan error
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards devs and fillers
	devs    map[string]*blockdev.Dev
	fillers map[string]context.CancelFunc // of volumes filling from snapshots
	ctx     context.Context               // of the fillers, ended by Close
}

// Walrus is where snapshots go and come from.
type Walrus interface {
	snapshots.Walrus
	snapshots.Chunks
}

// Deps are the server's collaborators; nil ones are the real ones.
type Deps struct {
	// Listen opens the AoE Conn on the configured interface.
	Listen func(ifname string) (aoe.Conn, error)
	// Verify checks internal calls' signatures.
	Verify *sigv4.Verifier
	// Walrus keeps snapshots (a client of walrus_url when nil).
	Walrus Walrus
}

// schema is ebs's database schema.
var schema = store.Schema{Version: 1, Buckets: []string{volumes.Bucket, snapshots.Bucket}}

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
	if deps.Verify == nil || (deps.Walrus == nil && cfg.WalrusURL != "") {
		cred, err := api.LoadCredentials(cfg.ComponentCredentials)
		if err != nil {
			return nil, err
		}
		if deps.Verify == nil {
			cloud := api.NewClient(cfg.CloudctlURL, cred, 30*time.Second)
			cloud.Region = cfg.Region
			deps.Verify = &sigv4.Verifier{Keys: &api.ComponentKeys{Lookup: cloud, TTL: 5 * time.Second}}
		}
		if deps.Walrus == nil && cfg.WalrusURL != "" {
			walrus := api.NewClient(cfg.WalrusURL, cred, time.Minute)
			walrus.Region = cfg.Region
			deps.Walrus = walrus
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	db, err := store.Open(filepath.Join(cfg.DataDir, "ebs.db"), schema, store.Options{})
	if err != nil {
		return nil, err
	}
	back, err := backend(cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	vols, err := volumes.Open(db, back, cfg.Shelf, cfg.Shelves)
	if err != nil {
		db.Close()
		return nil, err
	}
	var snaps *snapshots.Maker
	if deps.Walrus != nil {
		if snaps, err = snapshots.Open(db, cfg.DataDir, deps.Walrus, log); err != nil {
			db.Close()
			return nil, err
		}
	}
	conn, err := deps.Listen(cfg.Interface)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, db: db, vols: vols, snaps: snaps, walrus: deps.Walrus, conn: conn,
		target: aoe.NewTarget(conn, cfg.Workers, log), done: make(chan error, 2),
		devs: map[string]*blockdev.Dev{}, fillers: map[string]context.CancelFunc{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.http = &http.Server{Handler: s.handler(deps.Verify), ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	all, err := vols.List()
	if err == nil {
		for _, v := range all {
			if err = s.export(v, nil); err != nil {
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

// backend is where the configuration keeps volumes.
func backend(cfg Config) (volumes.Backend, error) {
	if cfg.LVMVolumeGroup == "" {
		return volumes.NewFiles(filepath.Join(cfg.DataDir, "volumes"))
	}
	b := &volumes.LVM{VG: cfg.LVMVolumeGroup, Pool: cfg.LVMThinPool, Run: volumes.RunLVM}
	return b, b.Check()
}

// export serves v over AoE to its attachments; a volume still filling
// from its snapshot goes on filling in the background, from src (a new
// reader of the snapshot when nil).
func (s *Server) export(v volumes.Volume, src *snapshots.Reader) error {
	if v.Filling && s.walrus == nil {
		return fmt.Errorf("volume %s fills from snapshot %s: walrus_url is not set", v.ID, v.SnapshotID)
	}
	f, err := os.OpenFile(s.vols.Path(v.ID), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.ID, err)
	}
	dev := blockdev.Open(f, int64(v.Sectors())*aoe.SectorSize, api.SnapshotChunkSize)
	if v.Filling {
		if src == nil {
			src = snapshots.NewReader(s.walrus, v.SnapshotID)
		}
		dev.FillFrom(src, v.Fill, fillLog{s.vols, v.ID})
	}
	err = s.target.Add(aoe.Export{Shelf: v.Shelf, Slot: v.Slot, Sectors: v.Sectors(), Dev: dev, Serial: v.ID,
		Model: "Koala EBS volume", Allow: v.MACs()})
	if err != nil {
		dev.Close()
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devs[v.ID] = dev
	if dev.Filling() {
		ctx, cancel := context.WithCancel(s.ctx)
		s.fillers[v.ID] = cancel
		s.wg.Go(func() { s.fill(ctx, v.ID, dev) })
	}
	return nil
}

// fillLog records a filling volume's progress in the store.
type fillLog struct {
	vols *volumes.Store
	id   string
}

func (l fillLog) SaveFill(bits []byte, complete bool) error {
	return l.vols.SaveFill(l.id, bits, complete)
}

// fillBatch is how many chunks the filler reads between syncs, and
// fillWorkers how many at once.
const (
	fillBatch   = 64
	fillWorkers = 4
)

// fill reads every chunk of a volume from its snapshot that nothing has
// read yet, syncing as it goes, until the volume is whole or ctx ends; a
// chunk that cannot be read is tried again.
func (s *Server) fill(ctx context.Context, id string, dev *blockdev.Dev) {
	start := time.Now()
	var filled atomic.Int64
	_ = blockdev.EachChunk(ctx, dev.Chunks(), fillWorkers, func(ctx context.Context, i int64) error {
		for {
			err := dev.FillChunk(ctx, i)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Warn("volume fill: retrying", "volume_id", id, "chunk", i, "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Second):
			}
		}
		if n := filled.Add(1); n%fillBatch == 0 || n == dev.Chunks() {
			if err := dev.Sync(); err != nil && ctx.Err() == nil {
				s.log.Warn("volume fill: sync", "volume_id", id, "err", err)
			}
		}
		return nil
	})
	if ctx.Err() == nil {
		if err := dev.Sync(); err != nil {
			s.log.Warn("volume fill: sync", "volume_id", id, "err", err)
		}
		s.log.Info("volume filled from its snapshot", "volume_id", id, "seconds", time.Since(start).Seconds())
	}
}

// unexport stops serving v and closes its device.
func (s *Server) unexport(v volumes.Volume) {
	s.target.Remove(v.Shelf, v.Slot)
	s.mu.Lock()
	dev, cancel := s.devs[v.ID], s.fillers[v.ID]
	delete(s.devs, v.ID)
	delete(s.fillers, v.ID)
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if dev != nil {
		dev.Close()
	}
}

// device returns the device of a served volume.
func (s *Server) device(id string) (*blockdev.Dev, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devs[id]
	return d, ok
}

// Start serves the internal API and AoE.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.ln = ln
	daemon.Serve(s.http, ln, s.done)
	s.wg.Go(func() {
		if err := s.target.Serve(s.ctx); err != nil && s.ctx.Err() == nil {
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
	s.cancel()
	if s.snaps != nil {
		s.snaps.Close()
	}
	errs = append(errs, s.conn.Close())
	s.wg.Wait()
	errs = append(errs, s.closeState())
	return errors.Join(errs...)
}

func (s *Server) closeState() error {
	var errs []error
	s.mu.Lock()
	for id, d := range s.devs {
		if err := d.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("volume %s: %w", id, err))
		}
		d.Close()
	}
	s.devs = map[string]*blockdev.Dev{}
	s.mu.Unlock()
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}
