package capture

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// The credentials every request in the module's testdata/requests was
// signed with (see its README), region "local" where the client takes one.
const (
	KeyID  = "AKIDEXAMPLE5254E42B"
	Secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

// Request is one captured HTTP request.
type Request struct {
	Line    int         // 1-based line of the request in its file
	Time    time.Time   // server clock when the request arrived
	Method  string      // request method
	Target  string      // request-target as sent, still percent-encoded
	Client  string      // User-Agent; empty if the client sent none
	Headers [][2]string // name/value pairs in arrival order, names as sent
	Body    []byte      // body, with any chunked transfer coding removed
}

// line is the JSON form of a Request.
type line struct {
	Time    time.Time  `json:"time"`
	Method  string     `json:"method"`
	Target  string     `json:"target"`
	Headers [][]string `json:"headers"`
	BodyB64 string     `json:"body_b64"`
	Client  string     `json:"client"`
}

// Load reads the requests of the JSON-lines file at path, in file order.
func Load(path string) ([]Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Request
	br := bufio.NewReader(f)
	for n := 1; ; n++ {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			r, perr := parse(b)
			if perr != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n, perr)
			}
			r.Line = n
			out = append(out, r)
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
}

func parse(b []byte) (Request, error) {
	var l line
	if err := json.Unmarshal(b, &l); err != nil {
		return Request{}, err
	}
	if l.Method == "" || l.Target == "" {
		return Request{}, errors.New("no method or target")
	}
	body, err := base64.StdEncoding.DecodeString(l.BodyB64)
	if err != nil {
		return Request{}, fmt.Errorf("body_b64: %w", err)
	}
	r := Request{Time: l.Time, Method: l.Method, Target: l.Target, Client: l.Client, Body: body}
	for _, h := range l.Headers {
		if len(h) != 2 {
			return Request{}, fmt.Errorf("header %q: want a [name, value] pair", h)
		}
		r.Headers = append(r.Headers, [2]string{h[0], h[1]})
	}
	return r, nil
}

// Header returns the value of the first header named name, compared
// case-insensitively, or "" if there is none.
func (r Request) Header(name string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

// Name returns a name for r that is unique within its file and usable as a
// subtest name: the line number, the first word of the User-Agent ("unknown"
// if there is none) and the method, e.g. "16_curl_7.88.1_PUT". Characters
// other than letters, digits, '.', '-' and '_' become '_'.
func (r Request) Name() string {
	client, _, _ := strings.Cut(r.Client, " ")
	if client == "" {
		client = "unknown"
	}
	client = strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
			return c
		}
		return '_'
	}, client)
	return fmt.Sprintf("%02d_%s_%s", r.Line, client, r.Method)
}

// Server rebuilds r as a Go server would hand it to a handler (see
// ServerRequest), with changes: a non-empty target replaces r.Target; if
// header[0] is not empty, header[1] replaces the value of every header of
// that name (a header r lacks is not added); a non-nil body replaces r.Body.
// Headers are not adjusted to a new body: Content-Length stays as captured.
func (r Request) Server(target string, header [2]string, body []byte) (*http.Request, error) {
	if target == "" {
		target = r.Target
	}
	if body == nil {
		body = r.Body
	}
	hs := make([][2]string, 0, len(r.Headers))
	for _, h := range r.Headers {
		if header[0] != "" && strings.EqualFold(h[0], header[0]) {
			h[1] = header[1]
		}
		hs = append(hs, h)
	}
	return ServerRequest(r.Method, target, hs, body)
}

// ServerRequest builds the *http.Request a Go HTTP/1.1 server would hand to
// a handler for the given request line, headers and body. RequestURI is
// target as sent; URL is parsed from it, and a target that does not parse
// (raw spaces or other bytes a client should have escaped) is split at its
// first '?' into Path and RawQuery instead. A Host header sets Host and is
// not kept in Header; the other headers are added in order. ContentLength
// is that of a Content-Length header if there is one, else len(body).
// The body is copied.
func ServerRequest(method, target string, headers [][2]string, body []byte) (*http.Request, error) {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		p, q, _ := strings.Cut(target, "?")
		u = &url.URL{Path: p, RawQuery: q}
	}
	r := &http.Request{
		Method:     method,
		URL:        u,
		RequestURI: target,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Body:       http.NoBody,
	}
	for _, h := range headers {
		if strings.EqualFold(h[0], "Host") {
			r.Host = h[1]
			continue
		}
		r.Header.Add(h[0], h[1])
	}
	r.ContentLength = int64(len(body))
	if cl := r.Header.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad Content-Length %q", cl)
		}
		r.ContentLength = n
	}
	if len(body) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(bytes.Clone(body)))
	}
	return r, nil
}

// Mutate returns s with the byte at i changed into a different character
// of the same kind (digit, lower-case or upper-case letter), or into 'Q' if
// it is none of these: a change that no canonicalisation can undo.
func Mutate(s string, i int) string {
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
