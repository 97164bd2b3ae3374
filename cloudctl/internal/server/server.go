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
	"strings"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/accounts"
	"github.com/koala-cloud/koala/cloudctl/internal/admin"
	"github.com/koala-cloud/koala/cloudctl/internal/ca"
	"github.com/koala-cloud/koala/cloudctl/internal/ec2api"
	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/cloudctl/internal/metadata"
	"github.com/koala-cloud/koala/cloudctl/internal/snapshots"
	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/cloudctl/internal/volumes"
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
func DBPath(dataDir string) string { return filepath.Join(dataDir, "cloudctl.db") }

// SocketPath is the admin socket's path inside the data directory.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, "admin.sock") }

// OpenDB opens (creating) cloudctl's database.
func OpenDB(dataDir string) (*store.DB, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	return store.Open(DBPath(dataDir), state.Schema, store.Options{})
}

// Server is a cloudctl daemon.
type Server struct {
	cfg   Config
	log   *slog.Logger
	db    *store.DB
	http  *http.Server
	admin *http.Server
	// meta serves the instance metadata service, on its own listener
	// and without SigV4: guests are known by their source address.
	meta   *http.Server
	ln     net.Listener
	sock   net.Listener
	metaLn net.Listener // nil when metadata_listen is empty
	ready  chan struct{}
	done   chan error
	ec2    *ec2api.API
	fleet  *instances.Controller
	vols   *volumes.Controller
	snaps  *snapshots.Controller
	stop   context.CancelFunc // ends background work
}

// New opens cloudctl's state, which `cloudctl admin init` must have
// created; Start serves it.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	db, err := OpenDB(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	settings, err := admin.LoadSettings(db)
	if err != nil {
		db.Close()
		return nil, err
	}
	metadataKey, err := admin.EnsureMetadataKey(db)
	if err != nil {
		db.Close()
		return nil, err
	}
	authority, err := ca.Load(settings.CertPEM, settings.KeyPEM)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("the cloud's certificate: %w", err)
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = cfg.Listen
	}
	self, err := accounts.New(db).EnsureComponentKey(context.Background(), "cloudctl")
	if err != nil {
		db.Close()
		return nil, err
	}
	walrusURL := cfg.WalrusURL
	if walrusURL == "" {
		walrusURL = cfg.S3URL
	}
	walrus := &api.Client{BaseURL: walrusURL, AccessKeyID: self.ID, Secret: self.Secret,
		HTTP: &http.Client{Timeout: 30 * time.Minute}}
	zp, _ := sched.ParseZonePolicy(cfg.ZonePolicy)
	fleet := instances.New(db, instances.Config{
		Credentials: api.Credentials{AccessKeyID: self.ID, SecretAccessKey: self.Secret}, ZonePolicy: zp,
		Poll: cfg.ReconcilePoll.Duration, PendingTimeout: cfg.PendingTimeout.Duration, Keep: cfg.KeepTerminated.Duration,
	}, log)
	vols := volumes.NewController(db, volumes.Config{
		Credentials: api.Credentials{AccessKeyID: self.ID, SecretAccessKey: self.Secret}, Poll: cfg.ReconcilePoll.Duration,
	}, log)
	snaps := snapshots.NewController(db, snapshots.Config{
		Credentials: api.Credentials{AccessKeyID: self.ID, SecretAccessKey: self.Secret}, Poll: cfg.ReconcilePoll.Duration,
	}, walrus, log)
	ec2 := ec2api.New(ec2api.Config{
		Regions: []ec2api.Region{{Name: cfg.Region, Endpoint: endpoint}}, Zones: cfg.Zones,
		MaxInstances: cfg.MaxInstances, MaxElasticIPs: cfg.MaxElasticIPs, MaxSkew: cfg.MaxSkew.Duration,
		TokenKey: settings.TokenKey, RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst,
	}, db, ec2api.Deps{Bundles: walrus, Decrypt: authority.Decrypt, CloudCertPEM: settings.CertPEM, Fleet: fleet,
		Volumes: vols, Snapshots: snaps}, log)
	internal := &internalAPI{
		accounts: accounts.New(db), log: log, ca: authority, fleet: fleet,
		verify: &sigv4.Verifier{Keys: componentKeys{accounts.New(db)}, MaxSkew: cfg.MaxSkew.Duration},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == HealthPath && r.Method == http.MethodGet:
			_, _ = w.Write([]byte("ok\n"))
		case strings.HasPrefix(r.URL.Path, "/internal/"):
			internal.ServeHTTP(w, r)
		default:
			ec2.ServeHTTP(w, r)
		}
	})
	imds := metadata.New(metadata.Config{TokenKey: metadataKey},
		&metadataLookup{db: db, region: cfg.Region}, log.With("component", "metadata"))
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	return &Server{
		cfg: cfg, log: log, db: db, ec2: ec2, fleet: fleet, vols: vols, snaps: snaps, ready: make(chan struct{}), done: make(chan error, 3),
		http:  &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: errLog},
		admin: &http.Server{Handler: admin.Handler(admin.NewService(db), log), ReadHeaderTimeout: 30 * time.Second, ErrorLog: errLog},
		meta:  &http.Server{Handler: imds, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: errLog},
	}, nil
}

// Start listens on the API address, the admin socket and the metadata
// address (when set) and serves in the background.
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
	var metaLn net.Listener
	if s.cfg.MetadataListen != "" {
		if metaLn, err = net.Listen("tcp", s.cfg.MetadataListen); err != nil {
			ln.Close()
			sock.Close()
			return fmt.Errorf("metadata listen: %w", err)
		}
	}
	s.ln, s.sock, s.metaLn = ln, sock, metaLn
	s.http.BaseContext = func(net.Listener) context.Context { return ctx }
	s.meta.BaseContext = s.http.BaseContext
	daemon.Serve(s.http, ln, s.done)
	daemon.Serve(s.admin, sock, s.done)
	if metaLn != nil {
		daemon.Serve(s.meta, metaLn, s.done)
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	go s.ec2.RunCache(bg, 30*time.Second)
	go s.fleet.Run(bg)
	go s.vols.Run(bg)
	go s.snaps.Run(bg)
	s.log.Info("cloudctl serving", "addr", ln.Addr().String(), "admin_socket", sockPath,
		"metadata_addr", s.MetadataAddr(), "region", s.cfg.Region)
	close(s.ready)
	return nil
}

// Ready is closed once the server accepts connections.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the API listens on, once started.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// MetadataAddr is the address the metadata service listens on, once
// started; empty when metadata_listen turns it off.
func (s *Server) MetadataAddr() string {
	if s.metaLn == nil {
		return ""
	}
	return s.metaLn.Addr().String()
}

// Done delivers the first end of a serving loop: nil after Close.
func (s *Server) Done() <-chan error { return s.done }

// Close stops serving and closes the database.
func (s *Server) Close() error {
	if s.stop != nil {
		s.stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := errors.Join(s.http.Shutdown(ctx), s.admin.Shutdown(ctx), s.meta.Shutdown(ctx))
	_ = os.Remove(SocketPath(s.cfg.DataDir))
	return errors.Join(err, s.db.Close())
}
