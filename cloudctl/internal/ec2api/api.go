package ec2api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/accounts"
	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/ec2query"
	"github.com/koala-cloud/koala/pkg/sigv2"
	"github.com/koala-cloud/koala/pkg/sigv4"
	"github.com/koala-cloud/koala/pkg/store"
)

// DefaultVersion is the API version answered when a request names none.
const DefaultVersion = "2016-11-15"

// LegacyPrefix is the path Eucalyptus served the EC2 API under.
const LegacyPrefix = "/services/Eucalyptus"

// Region is a region DescribeRegions lists.
type Region struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"` // host[:port], as EC2 lists it
}

// Config tunes the API.
type Config struct {
	// Regions are listed by DescribeRegions; the first is this one.
	Regions []Region
	// Zones are this region's availability zones, until clusters
	// register them.
	Zones []string
	// MaxInstances and MaxElasticIPs are reported by
	// DescribeAccountAttributes.
	MaxInstances, MaxElasticIPs int
	// MaxBody bounds a request body.
	MaxBody int64
	// MaxSkew is the clock skew allowed in signed requests.
	MaxSkew time.Duration
	// TokenKey signs pagination tokens.
	TokenKey []byte
	// RateLimit is how many requests a second an account may make over
	// time, and RateBurst how many at once; beyond them EC2 answers
	// RequestLimitExceeded. A RateLimit of 0 turns the limit off.
	RateLimit, RateBurst float64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// API serves the EC2 Query API.
type API struct {
	cfg      Config
	db       *store.DB
	accounts *accounts.Store
	tokens   *ec2query.Tokens
	v4       *sigv4.Verifier
	v2       *sigv2.QueryVerifier
	log      *slog.Logger
	actions  map[string]action
	idemMu   sync.Mutex // serialises calls that carry a ClientToken
	limit    *limiter
	bundles  Bundles
	decrypt  func([]byte) ([]byte, error)
	certPEM  []byte
	kick     chan string // images to cache now
	fleet    Fleet
	volumes  Volumes
	// snapshots has the snapshots taken and deleted.
	snapshots Snapshots
	// instances caches decoded instance records for the Describe calls.
	instances instances.Cache
	rendered  renderCache
}

// Deps are the API's collaborators: walrus, for image bundles, and the
// cloud's private key, to check that a bundle is encrypted for it.
type Deps struct {
	Bundles Bundles
	Decrypt func(ciphertext []byte) ([]byte, error)
	// CloudCertPEM is the cloud's certificate, which bundles encrypt their
	// key for; DescribeCloudCertificate hands it out.
	CloudCertPEM []byte
	// Fleet runs instances; without it the instance actions answer
	// Unsupported.
	Fleet Fleet
	// Volumes drives the zones' ebs daemons; nil leaves volumes as they
	// are recorded.
	Volumes Volumes
	// Snapshots takes and deletes snapshots; nil leaves them as they are
	// recorded.
	Snapshots Snapshots
}

// action runs one EC2 action. It reads its parameters, calls rq.ready
// before changing anything, and returns the response body.
type action func(rq *request) (any, error)

// New returns the EC2 API over cloudctl's database.
func New(cfg Config, db *store.DB, deps Deps, log *slog.Logger) *API {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	accts := accounts.New(db)
	keys := userKeys{accts}
	a := &API{
		cfg: cfg, db: db, accounts: accts, tokens: ec2query.NewTokens(cfg.TokenKey), log: log,
		limit:   newLimiter(cfg.RateLimit, cfg.RateBurst),
		bundles: deps.Bundles, decrypt: deps.Decrypt, certPEM: deps.CloudCertPEM, kick: make(chan string, 64), fleet: deps.Fleet, volumes: deps.Volumes,
		snapshots: deps.Snapshots, v4: &sigv4.Verifier{Keys: keys, Now: cfg.Now, MaxSkew: cfg.MaxSkew, MaxBufferedBody: cfg.MaxBody},
		v2: &sigv2.QueryVerifier{Keys: keys, Now: cfg.Now, MaxSkew: cfg.MaxSkew},
	}
	a.actions = map[string]action{
		"DescribeRegions":           a.describeRegions,
		"DescribeAvailabilityZones": a.describeAvailabilityZones,
		"DescribeAccountAttributes": a.describeAccountAttributes,

		"CreateKeyPair":    a.createKeyPair,
		"ImportKeyPair":    a.importKeyPair,
		"DescribeKeyPairs": a.describeKeyPairs,
		"DeleteKeyPair":    a.deleteKeyPair,

		"CreateSecurityGroup":           a.createSecurityGroup,
		"DeleteSecurityGroup":           a.deleteSecurityGroup,
		"DescribeSecurityGroups":        a.describeSecurityGroups,
		"AuthorizeSecurityGroupIngress": a.authorize(false),
		"AuthorizeSecurityGroupEgress":  a.authorize(true),
		"RevokeSecurityGroupIngress":    a.revoke(false),
		"RevokeSecurityGroupEgress":     a.revoke(true),

		"DescribeCloudCertificate": a.describeCloudCertificate,
		"RegisterImage":            a.registerImage,
		"DescribeImages":           a.describeImages,
		"DeregisterImage":          a.deregisterImage,
		"DescribeImageAttribute":   a.describeImageAttribute,
		"ModifyImageAttribute":     a.modifyImageAttribute,
		"ResetImageAttribute":      a.resetImageAttribute,

		"UploadSigningCertificate": a.uploadSigningCertificate,
		"ListSigningCertificates":  a.listSigningCertificates,

		"RunInstances":                  a.runInstances,
		"DescribeInstances":             a.describeInstances,
		"DescribeInstanceStatus":        a.describeInstanceStatus,
		"TerminateInstances":            a.terminateInstances,
		"StopInstances":                 a.stopInstances,
		"StartInstances":                a.startInstances,
		"RebootInstances":               a.rebootInstances,
		"GetConsoleOutput":              a.getConsoleOutput,
		"DescribeInstanceAttribute":     a.describeInstanceAttribute,
		"ModifyInstanceAttribute":       a.modifyInstanceAttribute,
		"ModifyInstanceMetadataOptions": a.modifyInstanceMetadataOptions,

		"AllocateAddress":     a.allocateAddress,
		"AssociateAddress":    a.associateAddress,
		"DisassociateAddress": a.disassociateAddress,
		"ReleaseAddress":      a.releaseAddress,
		"DescribeAddresses":   a.describeAddresses,

		"CreateVolume":         a.createVolume,
		"DeleteVolume":         a.deleteVolume,
		"DescribeVolumes":      a.describeVolumes,
		"DescribeVolumeStatus": a.describeVolumeStatus,
		"AttachVolume":         a.attachVolume,
		"DetachVolume":         a.detachVolume,

		"CreateSnapshot":            a.createSnapshot,
		"DeleteSnapshot":            a.deleteSnapshot,
		"DescribeSnapshots":         a.describeSnapshots,
		"DescribeSnapshotAttribute": a.describeSnapshotAttribute,
		"ModifySnapshotAttribute":   a.modifySnapshotAttribute,
		"ResetSnapshotAttribute":    a.resetSnapshotAttribute,

		"CreateTags":   a.createTags,
		"DeleteTags":   a.deleteTags,
		"DescribeTags": a.describeTags,
	}
	return a
}

// userKeys serves account keys, never component keys, to the signature
// checks of the public API.
type userKeys struct{ s *accounts.Store }

func (u userKeys) SecretKey(ctx context.Context, id string) (string, error) {
	k, _, err := u.s.Key(ctx, id)
	if errors.Is(err, accounts.ErrNoSuchKey) || (err == nil && (k.Account == "" || !k.Active)) {
		return "", fmt.Errorf("%w: %s", sigv4.ErrUnknownKey, id)
	}
	return k.Secret, err
}

// request is one EC2 request in flight.
type request struct {
	ctx     context.Context
	api     *API
	id      string
	action  string
	version string
	p       *ec2query.Params
	vals    map[string][]string // the raw parameters, for fingerprints
	account accounts.Account
	dryRun  bool
}

// ready ends the reading of parameters: any the action did not read is
// UnknownParameter, and a DryRun stops here with DryRunOperation.
func (rq *request) ready() error {
	if err := rq.p.Unknown(); err != nil {
		return err
	}
	if rq.dryRun {
		return awserr.New("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	return nil
}

// ServeHTTP handles one Query request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rq := &request{ctx: r.Context(), api: a, id: requestID(), version: DefaultVersion}
	body, err := a.serve(rq, r)
	status := http.StatusOK
	code := ""
	if err == nil {
		if iam, ok := body.(iamBody); ok {
			err = iam.write(w, rq.action, rq.id)
		} else {
			err = ec2query.Write(w, rq.action, rq.version, rq.id, body)
		}
	}
	if err != nil {
		ae := awserr.From(err, rules)
		if ae.Code == awserr.Internal {
			a.log.Error("internal error", "request_id", rq.id, "action", rq.action, "err", err)
		}
		status, code = ae.Status, ae.Code
		awserr.WriteEC2(w, ae, rq.id)
	}
	a.log.Info("request", "request_id", rq.id, "action", rq.action, "account", rq.account.ID,
		"status", status, "code", code, "latency_ms", time.Since(start).Milliseconds())
}

func (a *API) serve(rq *request, r *http.Request) (any, error) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	if path != "" && path != LegacyPrefix {
		return nil, awserr.New("InvalidAction", "The requested path "+r.URL.Path+" is not served.")
	}
	var akid string
	signedV4 := sigv4.IsSigned(r)
	if signedV4 {
		// The signature covers the body: check it before reading it.
		au, err := a.v4.Verify(r)
		if err != nil {
			return nil, authError(err)
		}
		akid = au.AccessKeyID
	}
	vals, err := ec2query.Parse(r, a.cfg.MaxBody)
	if err != nil {
		return nil, parseError(err)
	}
	p := ec2query.NewParams(vals)
	p.Skip(ec2query.CommonParams...)
	rq.p, rq.vals = p, vals
	rq.action = vals.Get("Action")
	if v := vals.Get("Version"); v != "" {
		rq.version = v
	}
	if !signedV4 {
		if !sigv2.IsQuerySigned(vals) {
			return nil, awserr.New("MissingAuthenticationToken", "Request is missing Authentication Token")
		}
		au, err := a.v2.Verify(rq.ctx, r.Method, r.Host, r.URL.Path, vals)
		if err != nil {
			return nil, authError(err)
		}
		akid = au.AccessKeyID
	}
	_, acct, err := a.accounts.Key(rq.ctx, akid)
	if err != nil {
		return nil, authError(err)
	}
	rq.account = acct
	if !a.limit.allow(acct.ID, a.cfg.Now()) {
		return nil, awserr.New("RequestLimitExceeded", "Request limit exceeded.")
	}
	if rq.action == "" {
		return nil, awserr.New("MissingAction", "The request must contain the parameter Action")
	}
	act, ok := a.actions[rq.action]
	if !ok {
		return nil, awserr.Newf("InvalidAction", "The action %s is not valid for this web service.", rq.action)
	}
	if rq.dryRun, err = p.Bool("DryRun"); err != nil {
		return nil, err
	}
	return act(rq)
}

// authError maps a signature check's failure to EC2's codes.
func authError(err error) error {
	switch {
	case errors.Is(err, sigv4.ErrUnknownKey), errors.Is(err, accounts.ErrNoSuchKey), errors.Is(err, accounts.ErrNoSuchAccount):
		return awserr.New("AuthFailure", "AWS was not able to validate the provided access credentials")
	case errors.Is(err, sigv4.ErrSignature), errors.Is(err, sigv2.ErrSignature):
		return awserr.New("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	case errors.Is(err, sigv4.ErrSkewed), errors.Is(err, sigv4.ErrExpired), errors.Is(err, sigv4.ErrNotYetValid),
		errors.Is(err, sigv2.ErrSkewed), errors.Is(err, sigv2.ErrExpired):
		return awserr.New("RequestExpired", "Request has expired. "+err.Error())
	case errors.Is(err, sigv4.ErrMalformed), errors.Is(err, sigv2.ErrMalformed), errors.Is(err, sigv2.ErrUnsupported),
		errors.Is(err, sigv4.ErrUnsupported):
		return awserr.New("IncompleteSignature", err.Error())
	case errors.Is(err, sigv4.ErrContentSHA256), errors.Is(err, sigv4.ErrIncompleteBody):
		return awserr.New("SignatureDoesNotMatch", err.Error())
	}
	return err
}

// parseError maps ec2query.Parse's failures.
func parseError(err error) error {
	switch {
	case errors.Is(err, ec2query.ErrBodyTooLarge):
		return awserr.New("RequestEntityTooLarge", "Request body too large")
	case errors.Is(err, ec2query.ErrMalformed):
		return awserr.New("InvalidParameterValue", err.Error())
	case errors.Is(err, ec2query.ErrContentType), errors.Is(err, ec2query.ErrMethod):
		return awserr.New("UnsupportedOperation", err.Error())
	}
	return authError(err)
}

// requestID returns a request ID in EC2's form, a version 4 UUID.
func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// update runs fn in a group-committed transaction.
func (a *API) update(fn func(tx *store.Tx) error) error { return a.db.Commit(fn) }

// view runs fn in a read-only transaction.
func (a *API) view(fn func(tx *store.Tx) error) error { return a.db.View(fn) }
