package s3api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/sigv2"
	"github.com/koala-cloud/koala/pkg/sigv4"
	"github.com/koala-cloud/koala/walrus/internal/acl"
	"github.com/koala-cloud/koala/walrus/internal/objstore"
)

// LegacyPrefix is the path prefix Eucalyptus's Walrus served S3 under.
const LegacyPrefix = "/services/Walrus"

// Account is an account as the S3 front end needs it.
type Account struct {
	ID          string // 12-digit account ID
	CanonicalID string
	DisplayName string
	Email       string
}

// Accounts resolves access keys and grantees.
type Accounts interface {
	// Key returns the account and secret key for an access key; an
	// unknown key gives an error wrapping ErrUnknownKey.
	Key(ctx context.Context, accessKeyID string) (Account, string, error)
	acl.Resolver
}

// ErrUnknownKey is what Accounts.Key wraps for an access key it does not
// know.
var ErrUnknownKey = sigv4.ErrUnknownKey

// Config tunes the API.
type Config struct {
	// Region is the one region this endpoint serves.
	Region string
	// Domains are the host names under which virtual-host addressing
	// applies: a request for bucket.<domain> addresses bucket.
	Domains []string
	// MaxBuckets is how many buckets one account may hold.
	MaxBuckets int
	// MaxObjectSize bounds a single PUT (S3: 5 GiB).
	MaxObjectSize int64
	// MinPartSize is the smallest part but the last (S3: 5 MiB).
	MinPartSize int64
	// MaxSkew is the allowed clock difference for signed requests.
	MaxSkew time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// API serves the S3 REST API.
type API struct {
	cfg      Config
	store    *objstore.Store
	accounts Accounts
	log      *slog.Logger
	v4       *sigv4.Verifier
	v2       *sigv2.S3Verifier
}

// New returns the S3 API over store.
func New(cfg Config, store *objstore.Store, accounts Accounts, log *slog.Logger) *API {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	keys := secrets{accounts}
	return &API{
		cfg: cfg, store: store, accounts: accounts, log: log,
		v4: &sigv4.Verifier{Keys: keys, Now: cfg.Now, MaxSkew: cfg.MaxSkew},
		v2: &sigv2.S3Verifier{Keys: keys, Now: cfg.Now, MaxSkew: cfg.MaxSkew},
	}
}

// secrets adapts Accounts to the verifiers' key lookup.
type secrets struct{ a Accounts }

func (s secrets) SecretKey(ctx context.Context, accessKeyID string) (string, error) {
	_, secret, err := s.a.Key(ctx, accessKeyID)
	return secret, err
}

// request is one S3 request in flight.
type request struct {
	w       http.ResponseWriter
	r       *http.Request
	ctx     context.Context
	id      string
	q       url.Values
	bucket  string
	key     string
	vhost   bool
	account *Account      // nil when anonymous
	who     *acl.Identity // nil when anonymous
	auth    *sigv4.Auth   // set for SigV4 requests
	op      string
}

// resource is the Resource element of an error for this request.
func (rq *request) resource() string {
	switch {
	case rq.bucket == "":
		return "/"
	case rq.key == "":
		return "/" + rq.bucket
	}
	return "/" + rq.bucket + "/" + rq.key
}

// ServeHTTP handles one request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &recorder{ResponseWriter: w, status: http.StatusOK}
	rq := &request{w: rw, r: r, ctx: r.Context(), id: newRequestID(), q: r.URL.Query()}
	h := rw.Header()
	h.Set("x-amz-request-id", rq.id)
	h.Set("x-amz-id-2", hostID())
	h.Set("Server", "Walrus")
	if r.ContentLength == 0 && strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		// botocore before 1.31 (Debian 12's) sends Expect with empty bodies
		// too and then misreads the connection's next response, stalling
		// until its read timeout; a fresh connection keeps it in step.
		h.Set("Connection", "close")
	}

	err := a.serve(rq)
	var code string
	if err != nil {
		if rw.wrote {
			// The response has started, mostly a client gone mid-GET: all
			// that is left is to cut it.
			a.log.Warn("response cut short", "request_id", rq.id, "op", rq.op, "err", err)
			panic(http.ErrAbortHandler)
		}
		ae := awserr.From(err, rules)
		code = ae.Code
		if ae.Code == awserr.Internal {
			a.log.Error("internal error", "request_id", rq.id, "op", rq.op, "err", err)
		}
		awserr.WriteS3(rw, r, ae, rq.resource(), rq.id, h.Get("x-amz-id-2"))
	}
	a.log.Info("request", "request_id", rq.id, "op", rq.op, "method", r.Method, "bucket", rq.bucket,
		"status", rw.status, "code", code, "bytes", rw.bytes, "latency_ms", time.Since(start).Milliseconds())
}

func (a *API) serve(rq *request) error {
	if err := a.address(rq); err != nil {
		return err
	}
	if rq.r.Method == http.MethodOptions {
		rq.op = "PreflightRequest"
		return preflight(rq)
	}
	if err := a.authenticate(rq); err != nil {
		return err
	}
	if err := a.expectOwner(rq, rq.bucket, "X-Amz-Expected-Bucket-Owner"); err != nil {
		return err
	}
	return a.dispatch(rq)
}

// preflight answers a CORS preflight: walrus configures no CORS rules,
// so S3's answers for a bucket without them.
func preflight(rq *request) error {
	h := rq.r.Header
	if h.Get("Origin") == "" {
		return awserr.New("BadRequest", "Insufficient information. Origin request header needed.")
	}
	if h.Get("Access-Control-Request-Method") == "" {
		return awserr.New("BadRequest", "Invalid Access-Control-Request-Method: null")
	}
	return awserr.New("AccessForbidden", "CORSResponse: CORS is not enabled for this bucket.")
}

// expectOwner answers AccessDenied when the request names, in header, an
// account that does not own bucket (the x-amz-expected-bucket-owner
// safeguard against writing into a bucket that changed hands).
func (a *API) expectOwner(rq *request, bucket, header string) error {
	want := rq.r.Header.Get(header)
	if want == "" || bucket == "" {
		return nil
	}
	b, err := a.store.Bucket(rq.ctx, bucket)
	if err != nil {
		return err
	}
	if b.Account != want {
		return accessDenied()
	}
	return nil
}

// address finds the bucket and key, from the host name (virtual-host
// style) or the path.
func (a *API) address(rq *request) error {
	path := rq.r.URL.Path
	if path == LegacyPrefix || strings.HasPrefix(path, LegacyPrefix+"/") {
		path = strings.TrimPrefix(path, LegacyPrefix)
	}
	path = strings.TrimPrefix(path, "/")
	host := rq.r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	for _, d := range a.cfg.Domains {
		if b, ok := strings.CutSuffix(host, "."+d); ok && b != "" {
			rq.bucket, rq.key, rq.vhost = b, path, true
			if !utf8.ValidString(rq.key) {
				return awserr.New("InvalidURI", "")
			}
			return nil
		}
	}
	rq.bucket, rq.key, _ = strings.Cut(path, "/")
	if !utf8.ValidString(rq.bucket) || !utf8.ValidString(rq.key) {
		return awserr.New("InvalidURI", "")
	}
	return nil
}

// authenticate checks the request's signature, if any, and sets who is
// asking. Unsigned requests are anonymous.
func (a *API) authenticate(rq *request) error {
	r := rq.r
	var akid string
	switch {
	case sigv4.IsSigned(r):
		au, err := a.v4.Verify(r)
		if err != nil {
			if errors.Is(err, sigv4.ErrMalformed) {
				if sigv4.IsPresigned(r) {
					return awserr.New("AuthorizationQueryParametersError", err.Error())
				}
				return awserr.New("AuthorizationHeaderMalformed", err.Error())
			}
			return err
		}
		rq.auth, akid = au, au.AccessKeyID
	case sigv2.IsS3Signed(r):
		au, err := a.v2.Verify(r, vhostBucket(rq))
		if err != nil {
			return err
		}
		akid = au.AccessKeyID
	default:
		return nil
	}
	acct, _, err := a.accounts.Key(rq.ctx, akid)
	if err != nil {
		return err
	}
	rq.account = &acct
	rq.who = &acl.Identity{CanonicalID: acct.CanonicalID, DisplayName: acct.DisplayName}
	return nil
}

func vhostBucket(rq *request) string {
	if rq.vhost {
		return rq.bucket
	}
	return ""
}

func (rq *request) owner() acl.Owner {
	if rq.account == nil {
		return acl.Owner{}
	}
	return acl.Owner{ID: rq.account.CanonicalID, DisplayName: rq.account.DisplayName}
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

func hostID() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// recorder notes the status and size of a response for the access log,
// and keeps the kernel copy path (ReadFrom) of the writer it wraps.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *recorder) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) ReadFrom(src io.Reader) (int64, error) {
	w.wrote = true
	n, err := w.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
	w.bytes += n
	return n, err
}

func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
