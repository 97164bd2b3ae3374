package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/koala-cloud/koala/pkg/sigv4"
)

// WriteJSON answers an internal call with v.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers an internal call with an AWS code and message.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Error{Code: code, Message: msg})
}

// ReadJSON decodes an internal call's body of at most limit bytes into v;
// on failure it has answered 400 and returns false.
// It reads the body to its end, so that the signature check of the
// payload hash runs.
func ReadJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	switch {
	case err != nil:
		WriteError(w, http.StatusBadRequest, "MalformedRequest", "bad request body: "+err.Error())
		return false
	case int64(len(data)) > limit:
		WriteError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fmt.Sprintf("the body exceeds %d bytes", limit))
		return false
	}
	if err := json.Unmarshal(data, v); err != nil {
		WriteError(w, http.StatusBadRequest, "MalformedRequest", "bad request body: "+err.Error())
		return false
	}
	return true
}

// KeyLookup is how ComponentKeys asks cloudctl about an access key.
type KeyLookup interface {
	AccessKey(ctx context.Context, id string) (AccessKey, error)
}

// ComponentKeys serves the secrets of daemons' component keys, resolved
// through cloudctl and cached for TTL, to a sigv4.Verifier: account keys
// never open an internal API.
type ComponentKeys struct {
	Lookup KeyLookup
	TTL    time.Duration

	mu    sync.Mutex
	cache map[string]cachedKey
}

type cachedKey struct {
	secret string
	at     time.Time
}

// SecretKey returns a component key's secret.
func (k *ComponentKeys) SecretKey(ctx context.Context, id string) (string, error) {
	now := time.Now()
	k.mu.Lock()
	c, ok := k.cache[id]
	k.mu.Unlock()
	if ok && now.Sub(c.at) < k.TTL {
		return c.secret, nil
	}
	ak, err := k.Lookup.AccessKey(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && (!ak.Active || ak.Component == "")) {
		return "", fmt.Errorf("%w: %s", sigv4.ErrUnknownKey, id)
	}
	if err != nil {
		return "", err
	}
	k.mu.Lock()
	if k.cache == nil || len(k.cache) > 10000 {
		k.cache = map[string]cachedKey{}
	}
	k.cache[id] = cachedKey{ak.SecretAccessKey, now}
	k.mu.Unlock()
	return ak.SecretAccessKey, nil
}

// Guard answers internal calls whose signature fails, or that are signed
// for another service than InternalService, with 403 AuthFailure and
// passes the others to h.
func Guard(v *sigv4.Verifier, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		au, err := v.Verify(r)
		if err == nil && au.Service != InternalService {
			err = fmt.Errorf("internal calls are signed for service %s, not %q", InternalService, au.Service)
		}
		if err != nil {
			WriteError(w, http.StatusForbidden, "AuthFailure", err.Error())
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ErrorRule maps a daemon's error to the status and AWS code its
// internal API answers with.
type ErrorRule struct {
	Err    error
	Status int
	Code   string
}

// Classify returns what to answer err with: another daemon's answer (a
// CallError) passes through; the first rule err matches gives its status
// and code, with err's text; anything else is an InternalError whose
// cause is not told (known is false: the caller logs it).
func Classify(rules []ErrorRule, err error) (status int, code, msg string, known bool) {
	var ce *CallError
	if errors.As(err, &ce) && ce.Code != "" {
		return ce.Status, ce.Code, ce.Message, true
	}
	for _, r := range rules {
		if errors.Is(err, r.Err) {
			return r.Status, r.Code, err.Error(), true
		}
	}
	return http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.", false
}
