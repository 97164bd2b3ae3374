package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	pkgapi "github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/daemon"
	"github.com/koala-cloud/koala/walrus/internal/accounts"
	"github.com/koala-cloud/koala/walrus/internal/acl"
	"github.com/koala-cloud/koala/walrus/internal/chunkapi"
	"github.com/koala-cloud/koala/walrus/internal/chunkstore"
	"github.com/koala-cloud/koala/walrus/internal/imageapi"
	"github.com/koala-cloud/koala/walrus/internal/imagecache"
	"github.com/koala-cloud/koala/walrus/internal/objstore"
	"github.com/koala-cloud/koala/walrus/internal/s3api"
)

// HealthPath answers 200 without authentication, for readiness checks. No
// bucket can be named "_health", so it never shadows one.
const HealthPath = "/_health"

// chunkSweepEvery is how often the chunk store drops the chunks of
// snapshots that never committed.
const chunkSweepEvery = time.Hour

// Server is a walrus daemon.
type Server struct {
	cfg    Config
	log    *slog.Logger
	store  *objstore.Store
	cache  *imagecache.Cache // nil when walrus runs standalone
	chunks *chunkstore.Store // nil when walrus runs standalone
	http   *http.Server
	ln     net.Listener
	ready  chan struct{}
	done   chan error

	// stopSweep ends the chunk sweep, which closes swept when it has
	// returned; both are nil until Start runs one.
	stopSweep context.CancelFunc
	swept     chan struct{}
}

// New opens walrus's state; Start serves it.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	accts, err := accountSource(cfg)
	if err != nil {
		return nil, err
	}
	st, err := objstore.Open(cfg.DataDir, log, objstore.Options{})
	if err != nil {
		return nil, err
	}
	api := s3api.New(s3api.Config{
		Region: cfg.Region, Domains: cfg.Domains, MaxBuckets: cfg.MaxBucketsPerAccount,
		MaxObjectSize: cfg.MaxObjectSize, MinPartSize: cfg.MinPartSize, MaxSkew: cfg.MaxSkew.Duration,
	}, st, accountsAdapter{accts}, log)
	in, err := internalAPI(cfg, st, accts, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	// Not a ServeMux: it would clean paths, and keys may hold "//" or "..".
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == HealthPath && r.Method == http.MethodGet:
			_, _ = w.Write([]byte("ok\n"))
		case in != nil && isInternal(r):
			in.ServeHTTP(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
	s := &Server{
		cfg: cfg, log: log, store: st, ready: make(chan struct{}), done: make(chan error, 1),
		http: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
	if in != nil {
		s.cache, s.chunks = in.cache, in.store
	}
	return s, nil
}

// Start listens and serves in the background.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.ln = ln
	s.http.BaseContext = func(net.Listener) context.Context { return ctx }
	daemon.Serve(s.http, ln, s.done)
	if s.chunks != nil {
		ctx, cancel := context.WithCancel(ctx)
		s.stopSweep, s.swept = cancel, make(chan struct{})
		go s.sweepChunks(ctx)
	}
	s.log.Info("walrus serving", "addr", ln.Addr().String(), "data_dir", s.cfg.DataDir, "region", s.cfg.Region)
	close(s.ready)
	return nil
}

// Ready is closed once the server accepts connections.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on, once started.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Done delivers the serving loop's end: nil after Close, or its error.
func (s *Server) Done() <-chan error { return s.done }

// Close stops serving, waiting a little for requests in flight, stops the
// chunk sweep and closes the stores.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if s.stopSweep != nil {
		s.stopSweep()
		<-s.swept
	}
	if s.chunks != nil {
		err = errors.Join(err, s.chunks.Close())
	}
	if s.cache != nil {
		err = errors.Join(err, s.cache.Close())
	}
	return errors.Join(err, s.store.Close())
}

// sweepChunks drops, every chunkSweepEvery until ctx ends, the chunks
// uploaded for snapshots that never committed.
func (s *Server) sweepChunks(ctx context.Context) {
	defer close(s.swept)
	t := time.NewTicker(chunkSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if _, err := s.chunks.Sweep(ctx, now); err != nil && ctx.Err() == nil {
				s.log.Error("sweep snapshot chunks", "err", err)
			}
		}
	}
}

// isInternal reports whether r is an internal call: under /internal/ and
// signed for the internal service, so that an S3 bucket named "internal"
// stays reachable.
func isInternal(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/internal/v1/") &&
		strings.Contains(r.Header.Get("Authorization"), "/"+pkgapi.InternalService+"/aws4_request")
}

// internal is walrus's internal calls, each signed with a component
// key: the image calls and the snapshot chunk calls.
type internal struct {
	images http.Handler
	chunks http.Handler
	cache  *imagecache.Cache
	store  *chunkstore.Store
}

// ServeHTTP sends a call to the image or the chunk calls by its path.
func (in *internal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if strings.HasPrefix(p, pkgapi.PathChunks) || strings.HasPrefix(p, pkgapi.PathSnapshotManifests) {
		in.chunks.ServeHTTP(w, r)
		return
	}
	in.images.ServeHTTP(w, r)
}

// internalAPI builds the internal calls when walrus works with cloudctl
// (nil when it runs standalone): they need component keys, and the image
// calls cloudctl's bundle key decryption. It opens the image cache and
// the chunk store (data_dir/snapshots).
func internalAPI(cfg Config, st *objstore.Store, accts accountProvider, log *slog.Logger) (*internal, error) {
	remote, ok := accts.(*accounts.Remote)
	if !ok {
		return nil, nil
	}
	dir := cfg.ImageCacheDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "imagecache")
	}
	cache, err := imagecache.Open(dir, cfg.ImageCacheSize, log)
	if err != nil {
		return nil, err
	}
	chunks, err := chunkstore.Open(filepath.Join(cfg.DataDir, "snapshots"), log, chunkstore.Options{})
	if err != nil {
		cache.Close()
		return nil, err
	}
	return &internal{
		images: imageapi.New(st, cache, remote, remote.Client(), log),
		chunks: imageapi.Guard(remote, log, chunkapi.New(chunks, log)),
		cache:  cache,
		store:  chunks,
	}, nil
}

// accountProvider is what walrus needs of a credential source: the
// standalone file or cloudctl.
type accountProvider interface {
	Key(ctx context.Context, accessKeyID string) (accounts.Account, error)
	ByEmail(email string) (accounts.Account, bool)
	ByID(id string) (accounts.Account, bool)
}

// accountSource picks the credential source the configuration names.
func accountSource(cfg Config) (accountProvider, error) {
	if cfg.CloudctlURL == "" {
		return accounts.Open(cfg.AccountsFile)
	}
	cred, err := pkgapi.LoadCredentials(cfg.ComponentCredentials)
	if err != nil {
		return nil, err
	}
	client := pkgapi.NewClient(cfg.CloudctlURL, cred, 10*time.Second)
	return accounts.NewRemote(client, cfg.KeyCacheTTL.Duration, 5*time.Minute), nil
}

// accountsAdapter serves s3api's view of accounts from the provider.
type accountsAdapter struct{ f accountProvider }

func (a accountsAdapter) Key(ctx context.Context, accessKeyID string) (s3api.Account, string, error) {
	acct, err := a.f.Key(ctx, accessKeyID)
	if errors.Is(err, accounts.ErrUnknownKey) {
		return s3api.Account{}, "", fmt.Errorf("%w: %s", s3api.ErrUnknownKey, accessKeyID)
	}
	if err != nil {
		return s3api.Account{}, "", err
	}
	return s3api.Account{ID: acct.AccountID, CanonicalID: acct.CanonicalUserID, DisplayName: acct.DisplayName, Email: acct.Email},
		acct.SecretAccessKey, nil
}

func (a accountsAdapter) ByEmail(email string) (acl.Owner, bool) {
	acct, ok := a.f.ByEmail(email)
	return acl.Owner{ID: acct.CanonicalUserID, DisplayName: acct.DisplayName}, ok
}

func (a accountsAdapter) ByID(id string) (acl.Owner, bool) {
	acct, ok := a.f.ByID(id)
	return acl.Owner{ID: acct.CanonicalUserID, DisplayName: acct.DisplayName}, ok
}
