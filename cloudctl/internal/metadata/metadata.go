package metadata

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Token modes, as EC2's HttpTokens instance metadata option names them.
const (
	// TokensOptional serves IMDSv1 (no token) and IMDSv2 requests.
	TokensOptional = "optional"
	// TokensRequired answers 401 to any GET without a valid token.
	TokensRequired = "required"
)

// Header names of the IMDSv2 exchange.
const (
	// TokenHeader carries a session token on GET requests.
	TokenHeader = "X-aws-ec2-metadata-token"
	// TTLHeader carries the requested token lifetime in seconds on the PUT
	// and is echoed on its response.
	TTLHeader = "X-aws-ec2-metadata-token-ttl-seconds"
)

// MaxTokenTTL is the longest token lifetime EC2 grants (six hours).
const MaxTokenTTL = 21600 * time.Second

// Instance is what the metadata service tells an instance about itself.
// Empty optional fields are left out of the listings, as EC2 leaves them out.
type Instance struct {
	ID        string // instance-id, e.g. i-0123456789abcdef0
	ImageID   string // ami-id
	KernelID  string // kernel-id; empty: none
	RamdiskID string // ramdisk-id; empty: none
	// ManifestPath is the AMI's manifest location (bucket/key), served as
	// ami-manifest-path.
	ManifestPath  string
	LaunchIndex   int    // ami-launch-index
	ReservationID string // reservation-id
	InstanceType  string // instance-type
	Zone          string // placement/availability-zone
	Region        string // placement/region and the identity document's region
	AccountID     string // the owner; identity document accountId and the interface's owner-id
	// Architecture goes into the identity document; empty means "x86_64".
	Architecture string
	PrivateIP    netip.Addr // local-ipv4
	// PrivateDNS is hostname and local-hostname; empty: the private IP.
	PrivateDNS string
	PublicIP   netip.Addr // public-ipv4; the zero Addr: none
	// PublicDNS is public-hostname; empty: the public IP, if any.
	PublicDNS      string
	MAC            string   // mac, and the network/interfaces/macs/ key
	SecurityGroups []string // group names, security-groups
	PublicKeys     []PublicKey
	UserData       []byte    // user-data; nil or empty: 404
	LaunchTime     time.Time // the identity document's pendingTime
	// HTTPTokens is TokensOptional or TokensRequired; empty means optional.
	HTTPTokens string
	// HTTPPutHopLimit is the instance's HttpPutResponseHopLimit. The handler
	// does not enforce it: the reply leaves through the host that DNATs the
	// request, so that host's packet filter is where the TTL is set.
	HTTPPutHopLimit int
	// Disabled is an instance whose metadata endpoint is turned off
	// (HttpEndpoint disabled): every request gets an empty 403.
	Disabled bool
	// BlockDevices maps block-device-mapping/ names to devices, e.g.
	// "ami" -> "sda1", "root" -> "/dev/sda1", "ephemeral0" -> "sda2".
	BlockDevices map[string]string
}

// PublicKey is a key pair's public half as public-keys/N/openssh-key serves it.
type PublicKey struct {
	Name    string // the key pair's name, listed as "N=name"
	OpenSSH string // the key in OpenSSH authorized_keys format
}

// Lookup finds the instance that owns a source address. ok is false when no
// running instance holds the address.
type Lookup interface {
	Instance(ctx context.Context, source netip.Addr) (in Instance, ok bool, err error)
}

// LookupFunc adapts a function to Lookup.
type LookupFunc func(ctx context.Context, source netip.Addr) (Instance, bool, error)

// Instance calls f.
func (f LookupFunc) Instance(ctx context.Context, source netip.Addr) (Instance, bool, error) {
	return f(ctx, source)
}

// Config configures a Service.
type Config struct {
	// TokenKey is the HMAC key that signs IMDSv2 tokens. Empty: a random
	// key, so tokens do not survive a restart and are not shared between
	// cloud controllers.
	TokenKey []byte
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service is the metadata HTTP handler. It is safe for concurrent use.
type Service struct {
	key    []byte
	now    func() time.Time
	lookup Lookup
	log    *slog.Logger
}

// New returns a Service that identifies callers through lookup and logs one
// line per request to log (nil: discard).
func New(cfg Config, lookup Lookup, log *slog.Logger) *Service {
	s := &Service{key: cfg.TokenKey, now: cfg.Now, lookup: lookup, log: log}
	if len(s.key) == 0 {
		s.key = make([]byte, 32)
		rand.Read(s.key) // never fails (crypto/rand, Go 1.24+)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// tokenPath is the one path that mints tokens.
const tokenPath = "/latest/api/token"

// ServeHTTP answers one metadata request.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	w = rec
	w.Header().Set("Server", "EC2ws")
	var instanceID string
	defer func() {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "metadata request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.String("source", r.RemoteAddr), slog.String("instance_id", instanceID),
			slog.Int("status", rec.status), slog.Duration("latency", s.now().Sub(start)))
	}()

	switch {
	case r.URL.Path == tokenPath && r.Method == http.MethodPut:
		instanceID = s.serveToken(w, r)
		return
	case r.URL.Path == tokenPath && r.Method == http.MethodOptions:
		w.Header().Set("Allow", "OPTIONS, PUT")
		w.WriteHeader(http.StatusOK)
		return
	case r.URL.Path == tokenPath:
		// EC2 answers a GET of the token path with 405 and this Allow.
		w.Header().Set("Allow", "OPTIONS, PUT")
		writeError(w, http.StatusMethodNotAllowed)
		return
	case r.Method == http.MethodPut:
		// EC2 refuses a PUT anywhere else (/latest/api/token/, a dated
		// version's api/token) with an empty 403.
		writeError(w, http.StatusForbidden)
		return
	case r.Method == http.MethodOptions:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		w.WriteHeader(http.StatusOK)
		return
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed)
		return
	}

	in, ok := s.caller(w, r)
	if !ok {
		return
	}
	instanceID = in.ID
	if !s.authorized(r, in) {
		writeError(w, http.StatusUnauthorized)
		return
	}
	s.serveGet(w, r, in)
}

// caller looks up the instance behind the request's source address. When it
// returns false it has written the response.
func (s *Service) caller(w http.ResponseWriter, r *http.Request) (Instance, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		s.log.Warn("metadata request without an IP source", slog.String("source", r.RemoteAddr))
		writeError(w, http.StatusNotFound)
		return Instance{}, false
	}
	in, ok, err := s.lookup.Instance(r.Context(), ap.Addr().Unmap())
	if err != nil {
		s.log.Error("metadata lookup", slog.String("source", r.RemoteAddr), slog.Any("error", err))
		writeError(w, http.StatusInternalServerError)
		return Instance{}, false
	}
	if !ok {
		writeError(w, http.StatusNotFound)
		return Instance{}, false
	}
	if in.Disabled {
		writeError(w, http.StatusForbidden)
		return Instance{}, false
	}
	return in, true
}

// authorized applies the token rules to a GET or HEAD: a token, when sent,
// must be valid for this instance; without one the instance must allow
// IMDSv1.
func (s *Service) authorized(r *http.Request, in Instance) bool {
	if vals, sent := r.Header[http.CanonicalHeaderKey(TokenHeader)]; sent {
		return len(vals) == 1 && s.verifyToken(vals[0], in.ID) == nil
	}
	return in.HTTPTokens != TokensRequired
}

// serveToken answers PUT /latest/api/token and returns the caller's
// instance ID (empty when unknown).
func (s *Service) serveToken(w http.ResponseWriter, r *http.Request) string {
	// EC2 rejects token requests that went through a proxy, so that an
	// open reverse proxy on the instance cannot hand out tokens.
	if _, proxied := r.Header["X-Forwarded-For"]; proxied {
		writeError(w, http.StatusForbidden)
		return ""
	}
	ttl, err := parseTTL(r.Header.Values(TTLHeader))
	if err != nil {
		writeError(w, http.StatusBadRequest)
		return ""
	}
	in, ok := s.caller(w, r)
	if !ok {
		return ""
	}
	tok := s.mintToken(in.ID, ttl)
	w.Header().Set(TTLHeader, strconv.Itoa(int(ttl/time.Second)))
	writeBody(w, "text/plain", []byte(tok))
	return in.ID
}

// parseTTL checks the TTL header: exactly one decimal number of seconds in
// 1..21600.
func parseTTL(vals []string) (time.Duration, error) {
	if len(vals) != 1 {
		return 0, fmt.Errorf("token ttl: %d headers", len(vals))
	}
	n, err := strconv.Atoi(vals[0])
	if err != nil {
		return 0, fmt.Errorf("token ttl: %w", err)
	}
	ttl := time.Duration(n) * time.Second
	if n < 1 || ttl > MaxTokenTTL {
		return 0, fmt.Errorf("token ttl %d out of range", n)
	}
	return ttl, nil
}

// serveGet resolves a read path against the instance's tree.
func (s *Service) serveGet(w http.ResponseWriter, r *http.Request, in Instance) {
	p := r.URL.Path
	if p == "/" {
		writeBody(w, "text/plain", []byte(strings.Join(versions, "\n")))
		return
	}
	slash := strings.HasSuffix(p, "/")
	segs := strings.Split(strings.Trim(p, "/"), "/")
	if !strings.HasPrefix(p, "/") || !knownVersion(segs[0]) {
		writeError(w, http.StatusNotFound)
		return
	}
	n := versionTree(in)
	for _, seg := range segs[1:] {
		if n = n.child(seg); n == nil {
			writeError(w, http.StatusNotFound)
			return
		}
	}
	switch {
	case n.dir() && !slash:
		loc := p + "/"
		if r.Host != "" {
			loc = "http://" + r.Host + loc
		}
		w.Header().Set("Location", loc)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusMovedPermanently)
	case n.dir():
		writeBody(w, "text/plain", []byte(n.listing()))
	default:
		writeBody(w, n.ctype, n.value)
	}
}

// writeBody writes a 200 with a known length.
func writeBody(w http.ResponseWriter, ctype string, body []byte) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// errorPage is the page EC2's metadata service sends with its 4xx answers.
const errorPage = `<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
	"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>%[1]d - %[2]s</title>
 </head>
 <body>
  <h1>%[1]d - %[2]s</h1>
 </body>
</html>
`

// writeError writes an error status with EC2's body for it: the XHTML page,
// except for 403, which EC2 sends empty.
func writeError(w http.ResponseWriter, status int) {
	if status == http.StatusForbidden {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(status)
		return
	}
	body := fmt.Sprintf(errorPage, status, http.StatusText(status))
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write([]byte(body))
}

// recorder remembers the status for the access log.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}
