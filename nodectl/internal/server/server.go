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

	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
	"github.com/koala-cloud/koala/nodectl/internal/imagecache"
	"github.com/koala-cloud/koala/nodectl/internal/node"
	nvolumes "github.com/koala-cloud/koala/nodectl/internal/volumes"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/daemon"
	"github.com/koala-cloud/koala/pkg/sched"
	"github.com/koala-cloud/koala/pkg/sigv4"
)

// Timeouts of nodectl's calls to other daemons.
const (
	callTimeout  = 10 * time.Second // cloudctl key lookups, status pushes
	keyCacheTTL  = 5 * time.Second  // the longest a revoked key keeps working
	pushDebounce = 50 * time.Millisecond
)

// The image fetcher is the walrus client itself.
var _ imagecache.Fetcher = (*api.Client)(nil)

// Server is a nodectl daemon.
type Server struct {
	cfg      Config
	log      *slog.Logger
	capacity sched.Resources
	cache    *imagecache.Cache
	cluster  *api.Client // nil: no status push
	cred     api.Credentials
	verifier *sigv4.Verifier
	inUse    inUse
	http     *http.Server
	ready    chan struct{}
	done     chan error

	// Set by Start.
	drv    hypervisor.Driver
	mgr    *node.Manager
	vols   *nvolumes.Attacher // nil: a driver without hot-plug
	ln     net.Listener
	stop   context.CancelFunc // the pusher's
	pushWG sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New checks the configuration, measures the host and opens the image
// cache; Start runs the node.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	capa, err := capacity(cfg.Capacity, cfg.DataDir, "/proc/meminfo")
	if err != nil {
		return nil, err
	}
	cred, err := api.LoadCredentials(cfg.ComponentCredentials)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, capacity: capa, cred: cred, ready: make(chan struct{}), done: make(chan error, 1)}
	cloud := s.client(cfg.CloudctlURL, cred, &http.Client{Timeout: callTimeout})
	s.verifier = &sigv4.Verifier{Keys: &api.ComponentKeys{Lookup: cloud, TTL: keyCacheTTL}, MaxBufferedBody: maxBody}
	if cfg.ClusterURL != "" {
		s.cluster = s.client(cfg.ClusterURL, cred, &http.Client{Timeout: callTimeout})
	}
	// Images stream for as long as they take (the cache bounds a fetch);
	// only a walrus that does not answer at all is given up on here.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 5 * time.Minute
	walrus := s.client(cfg.WalrusURL, cred, &http.Client{Transport: tr})
	cacheDir := cfg.CacheDir
	if cacheDir == "" {
		cacheDir = filepath.Join(cfg.DataDir, "cache")
	}
	s.cache, err = imagecache.Open(imagecache.Config{Dir: cacheDir, MaxBytes: cfg.CacheMaxBytes, InUse: s.inUse.get}, walrus, log)
	if err != nil {
		return nil, err
	}
	s.http = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

func (s *Server) client(url string, cred api.Credentials, hc *http.Client) *api.Client {
	c := api.NewClient(url, cred, 0)
	c.Region, c.HTTP = s.cfg.Region, hc
	return c
}

// Start prepares the host (the bridge), opens the hypervisor driver,
// loads and adopts the instances, listens, and starts pushing the status.
func (s *Server) Start(ctx context.Context) error {
	if s.cfg.Driver == DriverLibvirt && s.cfg.CreateBridge && s.cfg.Bridge != "" {
		if err := ensureBridge(ctx, s.cfg.Bridge, s.log); err != nil {
			return err
		}
	}
	drv, dm, err := openDriver(ctx, s.cfg, s.log)
	if err != nil {
		return err
	}
	s.drv = drv
	mgr, err := node.New(node.Config{
		Name: s.cfg.Name, Dir: filepath.Join(s.cfg.DataDir, "instances"), Bridge: s.cfg.Bridge,
		Cmdline: s.cfg.Cmdline, Capacity: s.capacity, StopGrace: s.cfg.StopGrace.Duration,
		Keep: s.cfg.KeepTerminated.Duration,
	}, drv, s.cache, dm, s.log)
	if err != nil {
		return err
	}
	s.mgr = mgr
	if hp, ok := drv.(nvolumes.Hotplugger); ok {
		dir := filepath.Join(s.cfg.DataDir, "volumes")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		s.vols = nvolumes.New(nvolumes.Config{Interface: s.cfg.AoEInterface, Dir: dir, UserSpace: s.cfg.AoEUserSpace}, hp,
			func(url string) nvolumes.EBS { return s.client(url, s.cred, &http.Client{Timeout: callTimeout}) }, nil, s.log)
		if s.cfg.AoEInterface != "" {
			if err := s.vols.Restore(ctx); err != nil {
				s.log.Error("volumes not served again", "err", err)
			}
		}
		mgr.SetVolumes(s.vols)
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if err := mgr.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	s.ln = ln
	s.inUse.set(mgr)
	s.http.BaseContext = func(net.Listener) context.Context { return ctx }
	daemon.Serve(s.http, ln, s.done)
	if s.cluster != nil {
		pctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		s.stop = stop
		p := &pusher{push: s.cluster.PushNodeStatus, status: mgr.Status, changed: mgr.Changed(),
			every: s.cfg.Heartbeat.Duration, debounce: pushDebounce, timeout: callTimeout, log: s.log}
		s.pushWG.Add(1)
		go func() {
			defer s.pushWG.Done()
			p.run(pctx)
		}()
	}
	s.log.Info("nodectl serving", "addr", ln.Addr().String(), "node", s.cfg.Name, "driver", s.cfg.Driver,
		"data_dir", s.cfg.DataDir, "cores", s.capacity.Cores, "memory_mib", s.capacity.MemoryMiB, "disk_gib", s.capacity.DiskGiB)
	close(s.ready)
	return nil
}

// Ready is closed once the server accepts connections.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on, once started.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Done delivers the serving loop's end: nil after Close, or its error.
func (s *Server) Done() <-chan error { return s.done }

// Close stops serving (waiting a little for calls in flight), the status
// pusher and the manager, and closes the driver. Domains keep running: a
// restarted nodectl adopts them.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.ln != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			errs = append(errs, s.http.Shutdown(ctx))
			cancel()
		}
		if s.stop != nil {
			s.stop()
			s.pushWG.Wait()
		}
		if s.mgr != nil {
			s.mgr.Close()
			if s.vols != nil {
				s.vols.Close()
			}
		}
		if c, ok := s.drv.(hypervisor.Closer); ok {
			errs = append(errs, c.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// inUse lets the image cache, opened before the manager, ask the manager
// which images its instances use. Until the manager runs every image
// counts as in use: nothing is evicted blind.
type inUse struct{ m atomic.Pointer[node.Manager] }

func (u *inUse) set(m *node.Manager) { u.m.Store(m) }

func (u *inUse) get(sha string) bool {
	m := u.m.Load()
	return m == nil || m.InUse(sha)
}
