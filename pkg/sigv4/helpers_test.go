package sigv4

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/koala-cloud/koala/internal/capture"
)

// staticKeys is a Credentials backed by a map.
type staticKeys map[string]string

func (k staticKeys) SecretKey(_ context.Context, id string) (string, error) {
	if s, ok := k[id]; ok {
		return s, nil
	}
	return "", fmt.Errorf("key %q: %w", id, ErrUnknownKey)
}

// fixedClock returns a Now func that always answers t.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func mustTime(t testing.TB, layout, s string) time.Time {
	t.Helper()
	v, err := time.Parse(layout, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// serverRequest builds the *http.Request a Go server would hand to a
// handler (see capture.ServerRequest).
func serverRequest(t testing.TB, method, target string, headers [][2]string, body []byte) *http.Request {
	t.Helper()
	r, err := capture.ServerRequest(method, target, headers, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// parseSuiteRequest parses a request file of the AWS SigV4 test suite.
// The request line is split on its first and last space (the suite puts
// raw spaces in paths); a header line that starts with whitespace continues
// the previous header and is taken as one more value of it, as the suite's
// own harnesses do.
func parseSuiteRequest(t testing.TB, text string) *http.Request {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	if !sc.Scan() {
		t.Fatal("empty request file")
	}
	line := sc.Text()
	i, j := strings.IndexByte(line, ' '), strings.LastIndexByte(line, ' ')
	if i < 0 || j <= i {
		t.Fatalf("bad request line %q", line)
	}
	method, target := line[:i], line[i+1:j]
	var headers [][2]string
	for sc.Scan() {
		l := sc.Text()
		if l == "" {
			break
		}
		if l[0] == ' ' || l[0] == '\t' {
			headers = append(headers, [2]string{headers[len(headers)-1][0], strings.TrimSpace(l)})
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("bad header line %q", l)
		}
		headers = append(headers, [2]string{k, strings.TrimLeft(v, " ")})
	}
	var body []string
	for sc.Scan() {
		body = append(body, sc.Text())
	}
	return serverRequest(t, method, target, headers, []byte(strings.Join(body, "\n")))
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
