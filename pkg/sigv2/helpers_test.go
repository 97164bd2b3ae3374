package sigv2

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/koala-cloud/koala/internal/capture"
)

type staticKeys map[string]string

func (k staticKeys) SecretKey(_ context.Context, id string) (string, error) {
	if s, ok := k[id]; ok {
		return s, nil
	}
	return "", fmt.Errorf("key %q: %w", id, ErrUnknownKey)
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// serverRequest builds the request a Go server hands to its handler (see
// capture.ServerRequest).
func serverRequest(t testing.TB, method, target string, headers [][2]string, body []byte) *http.Request {
	t.Helper()
	r, err := capture.ServerRequest(method, target, headers, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// loadCaptured loads testdata/requests/captured.jsonl at the top of the
// module: requests from real clients, signed with capture.KeyID.
func loadCaptured(t testing.TB) []capture.Request {
	t.Helper()
	reqs, err := capture.Load("../../testdata/requests/captured.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return reqs
}

// replay rebuilds c as a Go server would present it, with the target or
// one header value replaced when given (see capture.Request.Server).
func replay(t testing.TB, c capture.Request, target string, header [2]string) *http.Request {
	t.Helper()
	r, err := c.Server(target, header, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
