package imageapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/bundle"
	"github.com/koala-cloud/koala/pkg/sigv4"
	"github.com/koala-cloud/koala/walrus/internal/acl"
	"github.com/koala-cloud/koala/walrus/internal/imagecache"
	"github.com/koala-cloud/koala/walrus/internal/objstore"
)

// maxManifest bounds a manifest walrus reads.
const maxManifest = bundle.MaxManifestSize

// Keys resolves component keys (and only those).
type Keys interface {
	ComponentKey(ctx context.Context, id string) (secret, component string, err error)
}

// BundleKeys decrypts a bundle's key and IV (cloudctl).
type BundleKeys interface {
	BundleKeys(ctx context.Context, in api.BundleKeysRequest) (api.BundleKeysResponse, error)
}

// API serves walrus's image calls.
type API struct {
	store   *objstore.Store
	cache   *imagecache.Cache
	keys    BundleKeys
	log     *slog.Logger
	guarded http.Handler
}

// New returns the image API; its calls must be signed with a component
// key (see Guard).
func New(st *objstore.Store, cache *imagecache.Cache, components Keys, keys BundleKeys, log *slog.Logger) *API {
	a := &API{store: st, cache: cache, keys: keys, log: log}
	a.guarded = Guard(components, log, http.HandlerFunc(a.serve))
	return a
}

// Guard passes to h the internal calls (image and snapshot chunk calls
// alike) signed for api.InternalService with a component key that
// components knows, answers the others 403 AuthFailure, and logs each
// call with its caller.
func Guard(components Keys, log *slog.Logger, h http.Handler) http.Handler {
	verify := &sigv4.Verifier{Keys: secrets{components}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		au, err := verify.Verify(r)
		if err == nil && au.Service != api.InternalService {
			err = fmt.Errorf("signed for service %q, not %q", au.Service, api.InternalService)
		}
		if err != nil {
			log.Warn("internal call refused", "path", r.URL.Path, "err", err)
			api.WriteError(w, http.StatusForbidden, "AuthFailure", "internal calls need a component key")
			return
		}
		h.ServeHTTP(w, r)
		log.Info("internal", "method", r.Method, "path", r.URL.Path, "caller", au.AccessKeyID,
			"latency_ms", time.Since(start).Milliseconds())
	})
}

type secrets struct{ k Keys }

func (s secrets) SecretKey(ctx context.Context, id string) (string, error) {
	secret, _, err := s.k.ComponentKey(ctx, id)
	if err != nil {
		return "", fmt.Errorf("%w: %v", sigv4.ErrUnknownKey, err)
	}
	return secret, nil
}

// ServeHTTP serves /internal/v1/ calls.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.guarded.ServeHTTP(w, r) }

// serve serves a verified call.
func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == api.PathManifests:
		a.manifest(w, r)
	case r.Method == http.MethodPost && r.URL.Path == api.PathImageCache:
		a.cacheImage(w, r)
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == api.PathImages:
		a.image(w, r)
	default:
		api.WriteError(w, http.StatusNotFound, "InvalidAction", "no such internal call")
	}
}

// split turns "bucket/key" into its parts.
func split(location string) (bucket, key string, err error) {
	bucket, key, ok := strings.Cut(strings.TrimPrefix(location, "/"), "/")
	if !ok || bucket == "" || key == "" {
		return "", "", fmt.Errorf("location %q is not bucket/key", location)
	}
	return bucket, key, nil
}

// readManifest reads a manifest object whole (bounded) and its SHA-256.
func (a *API) readManifest(ctx context.Context, bucket, key string, check func(*objstore.Object) error) ([]byte, string, error) {
	rd, err := a.store.Open(ctx, bucket, key, func(o *objstore.Object) error {
		if o.Size > maxManifest {
			return fmt.Errorf("%w: manifest of %d bytes", bundle.ErrMalformedManifest, o.Size)
		}
		if check != nil {
			return check(o)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	defer rd.Close()
	sec := rd.Section(0, rd.Size)
	defer sec.Close()
	data, err := io.ReadAll(sec)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:]), nil
}

var errDenied = errors.New("access denied")

func (a *API) manifest(w http.ResponseWriter, r *http.Request) {
	var in api.ManifestRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil {
		api.WriteError(w, http.StatusBadRequest, "MalformedRequest", err.Error())
		return
	}
	bucket, key, err := split(in.Location)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, "InvalidManifest", err.Error())
		return
	}
	who := &acl.Identity{CanonicalID: in.CanonicalID}
	data, digest, err := a.readManifest(r.Context(), bucket, key, func(o *objstore.Object) error {
		if !o.ACL.Allows(who, acl.Read) {
			return errDenied
		}
		return nil
	})
	switch {
	case errors.Is(err, objstore.ErrNoSuchBucket), errors.Is(err, objstore.ErrNoSuchKey):
		api.WriteError(w, http.StatusNotFound, "NoSuchKey", "no manifest at "+in.Location)
	case errors.Is(err, errDenied):
		api.WriteError(w, http.StatusForbidden, "AccessDenied", "the account may not read "+in.Location)
	case errors.Is(err, bundle.ErrMalformedManifest):
		api.WriteError(w, http.StatusBadRequest, "InvalidManifest", err.Error())
	case err != nil:
		a.log.Error("read manifest", "location", in.Location, "err", err)
		api.WriteError(w, http.StatusInternalServerError, "InternalError", "cannot read the manifest")
	default:
		api.WriteJSON(w, api.ManifestResponse{Manifest: data, Digest: digest})
	}
}

// open returns the cached image of a registered bundle, decrypting and
// caching it first when it is not cached.
func (a *API) open(ctx context.Context, location, digest string) (*imagecache.Handle, error) {
	bucket, key, err := split(location)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", bundle.ErrMalformedManifest, err)
	}
	return a.cache.Get(ctx, imagecache.Key(location, digest), func(ctx context.Context, w io.Writer) error {
		data, got, err := a.readManifest(ctx, bucket, key, nil)
		if err != nil {
			return err
		}
		if got != digest {
			return fmt.Errorf("%w: the manifest at %s changed since the image was registered", errChanged, location)
		}
		m, err := bundle.ParseManifest(data)
		if err != nil {
			return err
		}
		keys, err := a.keys.BundleKeys(ctx, api.BundleKeysRequest{EncryptedKey: m.EC2EncryptedKey, EncryptedIV: m.EC2EncryptedIV})
		if err != nil {
			return fmt.Errorf("%w: %v", bundle.ErrKeyDecrypt, err)
		}
		aesKey, err1 := hex.DecodeString(keys.Key)
		iv, err2 := hex.DecodeString(keys.IV)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("%w: %v", bundle.ErrKeyDecrypt, err)
		}
		img, err := bundle.Open(ctx, m, aesKey, iv, parts{a.store, bucket, path.Dir(key)})
		if err != nil {
			return err
		}
		defer img.Close()
		_, err = io.Copy(w, img)
		return err
	})
}

var errChanged = errors.New("manifest changed")

// failure maps an image error to an internal API answer.
func failure(err error) (int, string) {
	switch {
	case errors.Is(err, objstore.ErrNoSuchBucket), errors.Is(err, objstore.ErrNoSuchKey):
		return http.StatusNotFound, "NoSuchKey"
	case errors.Is(err, bundle.ErrMalformedManifest), errors.Is(err, bundle.ErrBadSignature),
		errors.Is(err, bundle.ErrKeyDecrypt), errors.Is(err, bundle.ErrPartDigest),
		errors.Is(err, bundle.ErrImageDigest), errors.Is(err, bundle.ErrMissingPart), errors.Is(err, errChanged):
		return http.StatusBadRequest, "InvalidManifest"
	}
	return http.StatusInternalServerError, "InternalError"
}

func (a *API) cacheImage(w http.ResponseWriter, r *http.Request) {
	var in api.CacheRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil {
		api.WriteError(w, http.StatusBadRequest, "MalformedRequest", err.Error())
		return
	}
	h, err := a.open(r.Context(), in.Location, in.Digest)
	if err != nil {
		status, code := failure(err)
		if status >= 500 {
			a.log.Error("cache image", "location", in.Location, "err", err)
		}
		api.WriteError(w, status, code, err.Error())
		return
	}
	defer h.Close()
	api.WriteJSON(w, api.CacheResponse{Size: h.Size, SHA256: h.SHA256})
}

func (a *API) image(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	h, err := a.open(r.Context(), q.Get("location"), q.Get("digest"))
	if err != nil {
		status, code := failure(err)
		if status >= 500 {
			a.log.Error("serve image", "location", q.Get("location"), "err", err)
		}
		api.WriteError(w, status, code, err.Error())
		return
	}
	defer h.Close()
	w.Header().Set("x-amz-meta-sha256", h.SHA256)
	w.Header().Set("ETag", `"`+h.SHA256+`"`)
	http.ServeContent(w, r, "", h.Used, h.File)
}

// parts reads a bundle's parts from the bucket, beside the manifest.
type parts struct {
	store  *objstore.Store
	bucket string
	dir    string
}

func (p parts) Part(ctx context.Context, filename string) (io.ReadCloser, error) {
	key := filename
	if p.dir != "." && p.dir != "" {
		key = p.dir + "/" + filename
	}
	rd, err := p.store.Open(ctx, p.bucket, key, nil)
	if errors.Is(err, objstore.ErrNoSuchKey) {
		return nil, fmt.Errorf("%w: %s", bundle.ErrMissingPart, key)
	}
	if err != nil {
		return nil, err
	}
	return &partReader{ReadCloser: rd.Section(0, rd.Size), rd: rd}, nil
}

type partReader struct {
	io.ReadCloser
	rd *objstore.Reader
}

func (p *partReader) Close() error {
	err := p.ReadCloser.Close()
	p.rd.Close()
	return err
}
