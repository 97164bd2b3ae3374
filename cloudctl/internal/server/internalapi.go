package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/koala-cloud/koala/cloudctl/internal/accounts"
	"github.com/koala-cloud/koala/cloudctl/internal/ca"
	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sigv4"
)

// componentKeys serves only component keys to the internal API's
// signature check: user credentials never open it.
type componentKeys struct{ s *accounts.Store }

func (c componentKeys) SecretKey(ctx context.Context, id string) (string, error) {
	k, _, err := c.s.Key(ctx, id)
	if errors.Is(err, accounts.ErrNoSuchKey) || (err == nil && (k.Component == "" || !k.Active)) {
		return "", fmt.Errorf("%w: %s", sigv4.ErrUnknownKey, id)
	}
	return k.Secret, err
}

// internalAPI serves /internal/v1/ to the other daemons.
type internalAPI struct {
	accounts *accounts.Store
	verify   *sigv4.Verifier
	ca       *ca.CA
	fleet    *instances.Controller
	log      *slog.Logger
}

func (h *internalAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, err := h.verify.Verify(r); err != nil {
		api.WriteError(w, http.StatusForbidden, "AuthFailure", err.Error())
		return
	}
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, api.PathAccessKeys):
		h.accessKey(w, r, strings.TrimPrefix(r.URL.Path, api.PathAccessKeys))
	case r.Method == http.MethodGet && r.URL.Path == api.PathAccounts:
		h.account(w, r)
	case r.Method == http.MethodPost && r.URL.Path == api.PathBundleKeys:
		h.bundleKeys(w, r)
	case r.Method == http.MethodPost && r.URL.Path == api.PathInstanceEvents:
		h.instanceEvents(w, r)
	default:
		api.WriteError(w, http.StatusNotFound, "InvalidAction", "no such internal call")
	}
}

func (h *internalAPI) accessKey(w http.ResponseWriter, r *http.Request, id string) {
	k, a, err := h.accounts.Key(r.Context(), id)
	if errors.Is(err, accounts.ErrNoSuchKey) || errors.Is(err, accounts.ErrNoSuchAccount) {
		api.WriteError(w, http.StatusNotFound, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
		return
	}
	if err != nil {
		h.log.Error("internal access key lookup", "err", err)
		api.WriteError(w, http.StatusInternalServerError, "InternalError", "lookup failed")
		return
	}
	out := api.AccessKey{AccessKeyID: k.ID, SecretAccessKey: k.Secret, Active: k.Active, Component: k.Component}
	if k.Account != "" {
		out.Account = apiAccount(a)
	}
	api.WriteJSON(w, out)
}

// bundleKeys decrypts an image bundle's key and IV: the cloud's private
// key never leaves cloudctl.
func (h *internalAPI) bundleKeys(w http.ResponseWriter, r *http.Request) {
	var in api.BundleKeysRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil {
		api.WriteError(w, http.StatusBadRequest, "MalformedRequest", "bad bundle keys request")
		return
	}
	key, err1 := h.decrypt(in.EncryptedKey)
	iv, err2 := h.decrypt(in.EncryptedIV)
	if err := errors.Join(err1, err2); err != nil {
		api.WriteError(w, http.StatusBadRequest, "InvalidManifest", "the bundle's key is not encrypted for this cloud's certificate")
		return
	}
	api.WriteJSON(w, api.BundleKeysResponse{Key: key, IV: iv})
}

// decrypt decrypts one hex field of a manifest to the hex text the bundle
// tools encrypted.
func (h *internalAPI) decrypt(field string) (string, error) {
	raw, err := hex.DecodeString(strings.TrimSpace(field))
	if err != nil {
		return "", err
	}
	plain, err := h.ca.Decrypt(raw)
	if err != nil {
		return "", err
	}
	// The tools encrypt the 16-byte key and IV as 32 hex digits.
	if b, err := hex.DecodeString(string(plain)); err != nil || len(b) != 16 {
		return "", errors.New("decrypted key is not 32 hex digits")
	}
	return string(plain), nil
}

func (h *internalAPI) account(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var a accounts.Account
	var err error
	switch {
	case q.Has("canonical_id"):
		a, err = h.accounts.ByCanonicalID(r.Context(), q.Get("canonical_id"))
	case q.Has("email"):
		a, err = h.accounts.ByEmail(r.Context(), q.Get("email"))
	case q.Has("id"):
		a, err = h.accounts.Get(r.Context(), q.Get("id"))
	default:
		api.WriteError(w, http.StatusBadRequest, "MissingParameter", "canonical_id, email or id")
		return
	}
	if errors.Is(err, accounts.ErrNoSuchAccount) {
		api.WriteError(w, http.StatusNotFound, "NoSuchAccount", "no such account")
		return
	}
	if err != nil {
		h.log.Error("internal account lookup", "err", err)
		api.WriteError(w, http.StatusInternalServerError, "InternalError", "lookup failed")
		return
	}
	api.WriteJSON(w, apiAccount(a))
}

func apiAccount(a accounts.Account) api.Account {
	return api.Account{ID: a.ID, CanonicalID: a.CanonicalID, DisplayName: a.Name, Email: a.Email}
}

// instanceEvents records the instance states a cluster pushes.
func (h *internalAPI) instanceEvents(w http.ResponseWriter, r *http.Request) {
	zone := r.URL.Query().Get("zone")
	var sts []api.InstanceStatus
	if !api.ReadJSON(w, r, 64<<20, &sts) {
		return
	}
	if zone == "" {
		api.WriteError(w, http.StatusBadRequest, "MissingParameter", "zone is missing")
		return
	}
	if err := h.fleet.Apply(zone, sts); err != nil {
		h.log.Error("instance events", "zone", zone, "err", err)
		api.WriteError(w, http.StatusInternalServerError, "InternalError", "could not record the events")
		return
	}
	api.WriteJSON(w, struct{}{})
}
