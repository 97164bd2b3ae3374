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
	"time"

	"github.com/koala-cloud/koala/clusterctl/internal/admin"
	"github.com/koala-cloud/koala/clusterctl/internal/cluster"
	"github.com/koala-cloud/koala/clusterctl/internal/network"
	"github.com/koala-cloud/koala/clusterctl/internal/state"
	"github.com/koala-cloud/koala/pkg/adminsock"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/daemon"
	"github.com/koala-cloud/koala/pkg/sched"
	"github.com/koala-cloud/koala/pkg/sigv4"
	"github.com/koala-cloud/koala/pkg/store"
)

// HealthPath answers 200 without authentication, for readiness checks.
const HealthPath = "/_health"

// DBPath is the database's path inside the data directory.
func DBPath(dataDir string) string { return filepath.Join(dataDir, "clusterctl.db") }

// SocketPath is the admin socket's path inside the data directory.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, "admin.sock") }

// OpenDB opens (creating) clusterctl's database.
func OpenDB(dataDir string) (*store.DB, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	return store.Open(DBPath(dataDir), state.Schema, store.Options{})
}

// Server is a clusterctl daemon.
type Server struct {
	cfg     Config
	log     *slog.Logger
	db      *store.DB
	cluster *cluster.Cluster
	net     *netSync
	http    *http.Server
	admin   *http.Server
	ln      net.Listener
	sock    net.Listener
	ready   chan struct{}
	done    chan error
}

// New opens clusterctl's state; Start serves it.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cred, err := api.LoadCredentials(cfg.ComponentCredentials)
	if err != nil {
		return nil, err
	}
	cloud := api.NewClient(cfg.CloudctlURL, cred, 30*time.Second)
	cloud.Region = cfg.Region
	db, err := OpenDB(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	netCfg, err := cfg.network()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("config: network: %w", err)
	}
	nw, err := network.New(netCfg, network.Deps{}, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	ns := newNetSync(nw, cfg.Poll.Duration, log)
	c, err := openCluster(cfg, db, cred, cloud, ns.changed, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	verify := &sigv4.Verifier{Keys: &api.ComponentKeys{Lookup: cloud, TTL: 5 * time.Second}}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	return &Server{
		cfg: cfg, log: log, db: db, cluster: c, net: ns, ready: make(chan struct{}), done: make(chan error, 2),
		http: &http.Server{Handler: handler(c, verify, log), ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout: 2 * time.Minute, ErrorLog: errLog},
		admin: &http.Server{Handler: admin.Handler(c, log), ReadHeaderTimeout: 30 * time.Second, ErrorLog: errLog},
	}, nil
}

// openCluster loads the cluster over db; events go to cloud when it is
// not nil, and netChanged, when not nil, hears of lease and security
// group changes.
func openCluster(cfg Config, db *store.DB, cred api.Credentials, cloud *api.Client, netChanged func(),
	log *slog.Logger) (*cluster.Cluster, error) {
	policy, err := sched.ParsePolicy(cfg.Policy)
	if err != nil {
		return nil, err
	}
	pool, err := cfg.pool()
	if err != nil {
		return nil, err
	}
	opt := cluster.Options{
		Zone: cfg.Zone, Policy: policy, Pool: pool,
		Heartbeat: cfg.Heartbeat.Duration, Poll: cfg.Poll.Duration,
		LaunchTimeout: cfg.LaunchTimeout.Duration, KeepTerminated: cfg.KeepTerminated.Duration,
		Dial: func(url string) cluster.NodeClient {
			cl := api.NewClient(url, cred, 30*time.Second)
			cl.Region = cfg.Region
			return cl
		},
		LeasesChanged:  netChanged,
		NetworkChanged: netChanged,
		Log:            log,
	}
	if cloud != nil {
		opt.Events = cloud
	}
	return cluster.Open(db, opt)
}

// OpenOffline opens the cluster's state for the admin CLI when no daemon
// runs: no background work, and nodes are called only when the
// configuration names a key to sign with. close releases it.
func OpenOffline(cfg Config, log *slog.Logger) (c *cluster.Cluster, close func(), err error) {
	if cfg.DataDir == "" {
		return nil, nil, errors.New("config: data_dir is empty")
	}
	var cred api.Credentials
	if cfg.ComponentCredentials != "" {
		if cred, err = api.LoadCredentials(cfg.ComponentCredentials); err != nil {
			return nil, nil, err
		}
	}
	db, err := OpenDB(cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	if c, err = openCluster(cfg, db, cred, nil, nil, log); err != nil {
		db.Close()
		return nil, nil, err
	}
	return c, func() { db.Close() }, nil
}

// Start listens on the API address and the admin socket, serves in the
// background, and starts the cluster's background work: the dispatch of
// launches a previous run left pending resumes at once.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	sockPath := SocketPath(s.cfg.DataDir)
	sock, err := adminsock.Listen(sockPath)
	if err != nil {
		ln.Close()
		return fmt.Errorf("admin socket: %w", err)
	}
	s.ln, s.sock = ln, sock
	s.http.BaseContext = func(net.Listener) context.Context { return ctx }
	daemon.Serve(s.http, ln, s.done)
	daemon.Serve(s.admin, sock, s.done)
	s.cluster.Start(context.WithoutCancel(ctx))
	s.net.start(context.WithoutCancel(ctx), s.cluster)
	s.log.Info("clusterctl serving", "addr", ln.Addr().String(), "zone", s.cfg.Zone, "policy", s.cfg.Policy,
		"admin_socket", sockPath)
	close(s.ready)
	return nil
}

// Ready is closed once the server accepts connections.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the API listens on, once started.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Done delivers the first end of a serving loop: nil after Close.
func (s *Server) Done() <-chan error { return s.done }

// Close stops serving and background work, and closes the database.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := errors.Join(s.http.Shutdown(ctx), s.admin.Shutdown(ctx))
	s.cluster.Close()
	err = errors.Join(err, s.net.stop())
	if s.sock != nil {
		_ = os.Remove(SocketPath(s.cfg.DataDir))
	}
	return errors.Join(err, s.db.Close())
}
