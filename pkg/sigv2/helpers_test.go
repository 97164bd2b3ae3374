package sigv2

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

type staticKeys map[string]string

func (k staticKeys) SecretKey(_ context.Context, id string) (string, error) {
	if s, ok := k[id]; ok {
		return s, nil
	}
	return "", fmt.Errorf("key %q: %w", id, ErrUnknownKey)
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// serverRequest builds the request a Go server hands to its handler.
func serverRequest(t testing.TB, method, target string, headers [][2]string, body []byte) *http.Request {
	t.Helper()
	u, err := url.ParseRequestURI(target)
	if err != nil {
		p, q, _ := strings.Cut(target, "?")
		u = &url.URL{Path: p, RawQuery: q}
	}
	r := &http.Request{Method: method, RequestURI: target, URL: u, Header: http.Header{},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Body: http.NoBody}
	for _, h := range headers {
		if strings.EqualFold(h[0], "Host") {
			r.Host = h[1]
			continue
		}
		r.Header.Add(h[0], h[1])
	}
	r.ContentLength = int64(len(body))
	if len(body) > 0 {
		r.Body = io.NopCloser(strings.NewReader(string(body)))
	}
	return r
}

// captured is one request of testdata/requests/captured.jsonl at the top of the module.
type captured struct {
	Time    time.Time  `json:"time"`
	Method  string     `json:"method"`
	Target  string     `json:"target"`
	Headers [][]string `json:"headers"`
	BodyB64 string     `json:"body_b64"`
	Client  string     `json:"client"`
	line    int
	body    []byte
}

func loadCaptured(t testing.TB) []captured {
	t.Helper()
	f, err := os.Open("../../testdata/requests/captured.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []captured
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4<<20), 4<<20)
	for n := 1; sc.Scan(); n++ {
		var c captured
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		if c.body, err = base64.StdEncoding.DecodeString(c.BodyB64); err != nil {
			t.Fatal(err)
		}
		c.line = n
		out = append(out, c)
	}
	return out
}

func (c captured) header(name string) string {
	for _, h := range c.Headers {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

func (c captured) name() string {
	client, _, _ := strings.Cut(c.Client, " ")
	if client == "" {
		client = "s3cmd"
	}
	return fmt.Sprintf("%02d_%s_%s", c.line, strings.ReplaceAll(client, "/", "_"), c.Method)
}

// request rebuilds the request, with one header value or the target
// replaced when given.
func (c captured) request(t testing.TB, target string, header [2]string) *http.Request {
	if target == "" {
		target = c.Target
	}
	var hs [][2]string
	for _, h := range c.Headers {
		v := h[1]
		if header[0] != "" && strings.EqualFold(h[0], header[0]) {
			v = header[1]
		}
		hs = append(hs, [2]string{h[0], v})
	}
	return serverRequest(t, c.Method, target, hs, c.body)
}

// mutate changes the byte at i of s into a different character of the
// same kind.
func mutate(s string, i int) string {
	b := []byte(s)
	switch c := b[i]; {
	case c >= '0' && c <= '8', c >= 'a' && c <= 'y', c >= 'A' && c <= 'Y':
		b[i]++
	case c == '9':
		b[i] = '0'
	case c == 'z':
		b[i] = 'a'
	case c == 'Z':
		b[i] = 'A'
	default:
		b[i] = 'Q'
	}
	return string(b)
}
