package ec2api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sort"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/ec2query"
	"github.com/koala-cloud/koala/pkg/store"
)

// maxClientToken is EC2's limit on a ClientToken.
const maxClientToken = 64

// remembered is a create call's outcome kept under its client token.
type remembered struct {
	Action      string          `json:"action"`
	Fingerprint string          `json:"fingerprint"`
	Result      json.RawMessage `json:"result"`
}

// paramsFingerprint digests a request's parameters, without the token,
// DryRun and the signature's, so a retry with the same parameters maps to
// the same call.
func paramsFingerprint(p *ec2query.Params, vals map[string][]string) string {
	skip := map[string]bool{"ClientToken": true, "DryRun": true}
	for _, c := range ec2query.CommonParams {
		skip[c] = true
	}
	names := make([]string, 0, len(vals))
	for n := range vals {
		if !skip[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		for _, v := range vals[n] {
			h.Write([]byte(n))
			h.Write([]byte{0})
			h.Write([]byte(v))
			h.Write([]byte{0})
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// idempotent runs a create call once per ClientToken (which the action
// read with its other parameters): a retry with the same token and
// parameters gets the first call's result, with other parameters
// IdempotentParameterMismatch. Without a token it just runs.
func idempotent[T any](rq *request, token string, run func() (T, error)) (T, error) {
	var zero T
	if token == "" {
		return run()
	}
	if len(token) > maxClientToken {
		return zero, awserr.Newf("InvalidParameterValue", "Value (%s) for parameter clientToken is invalid. Length exceeds maximum of %d", token, maxClientToken)
	}
	// One token-bearing call at a time, so that two concurrent retries
	// cannot both run.
	rq.api.idemMu.Lock()
	defer rq.api.idemMu.Unlock()
	key := []byte(rq.account.ID + "/" + token)
	fp := paramsFingerprint(rq.p, rq.vals)
	var seen remembered
	err := rq.api.view(func(tx *store.Tx) error { return tx.Get(state.Idempotency, key, &seen) })
	switch {
	case err == nil:
		if seen.Action != rq.action || seen.Fingerprint != fp {
			return zero, awserr.New("IdempotentParameterMismatch", "The client token you have provided is associated with a resource that is already deleted or was created with different parameters.")
		}
		var out T
		if err := json.Unmarshal(seen.Result, &out); err != nil {
			return zero, err
		}
		return out, nil
	case !errors.Is(err, store.ErrNotFound):
		return zero, err
	}
	out, err := run()
	if err != nil {
		return zero, err
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return zero, err
	}
	err = rq.api.update(func(tx *store.Tx) error {
		return tx.Put(state.Idempotency, key, remembered{Action: rq.action, Fingerprint: fp, Result: raw})
	})
	return out, err
}
