package capture

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const capturedFile = "../../testdata/requests/captured.jsonl"

func TestLoad(t *testing.T) {
	reqs, err := Load(capturedFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 26 {
		t.Fatalf("%d requests, want 26", len(reqs))
	}
	names := map[string]bool{}
	for i, c := range reqs {
		if c.Line != i+1 {
			t.Errorf("request %d: Line = %d", i, c.Line)
		}
		if c.Time.IsZero() || c.Method == "" || c.Target == "" || len(c.Headers) == 0 {
			t.Errorf("line %d: incomplete: %+v", c.Line, c)
		}
		n := c.Name()
		if names[n] || strings.ContainsAny(n, "/ ") {
			t.Errorf("line %d: name %q repeated or unsafe", c.Line, n)
		}
		names[n] = true
	}

	c := reqs[15] // ec2-ami-tools: curl, Host without port, '/' of the key sent as %2F
	if got, want := c.Name(), "16_curl_7.88.1_PUT"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	if got := c.Header("CONTENT-LENGTH"); got != "200256" {
		t.Errorf("Header(CONTENT-LENGTH) = %q", got)
	}
	if got := c.Header("X-Missing"); got != "" {
		t.Errorf("Header(X-Missing) = %q", got)
	}
	if got := reqs[22].Name(); got != "23_unknown_PUT" { // s3cmd sends no User-Agent
		t.Errorf("Name = %q", got)
	}
}

func TestServer(t *testing.T) {
	reqs, err := Load(capturedFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range reqs {
		t.Run(c.Name(), func(t *testing.T) {
			r, err := c.Server("", [2]string{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Method != c.Method || r.RequestURI != c.Target || r.Host != c.Header("Host") || r.Host == "" {
				t.Errorf("%s %s Host %q, want %s %s Host %q", r.Method, r.RequestURI, r.Host, c.Method, c.Target, c.Header("Host"))
			}
			if _, ok := r.Header["Host"]; ok {
				t.Errorf("Host kept in Header")
			}
			if r.ContentLength != int64(len(c.Body)) {
				t.Errorf("ContentLength = %d, want %d", r.ContentLength, len(c.Body))
			}
			if r.URL.RequestURI() != c.Target {
				t.Errorf("URL %q, want %q", r.URL.RequestURI(), c.Target)
			}
			b, err := io.ReadAll(r.Body)
			if err != nil || !bytes.Equal(b, c.Body) {
				t.Errorf("body: %d bytes, %v; want %d bytes", len(b), err, len(c.Body))
			}
		})
	}

	c := reqs[15]
	r, err := c.Server("", [2]string{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Host != "127.0.0.1" || r.URL.Path != "/cap_bucket/prefix/small.img.part.00" || r.URL.EscapedPath() != "/cap_bucket/prefix%2Fsmall.img.part.00" {
		t.Errorf("Host %q, path %q (%q)", r.Host, r.URL.Path, r.URL.EscapedPath())
	}
	if r.ContentLength != 200256 || r.Header.Get("Expect") != "100-continue" {
		t.Errorf("ContentLength %d, Expect %q", r.ContentLength, r.Header.Get("Expect"))
	}

	// Overrides: the header keeps its place, Content-Length stays as sent.
	r, err = c.Server("/other?x", [2]string{"x-AMZ-acl", "private"}, []byte("short"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	if r.RequestURI != "/other?x" || r.URL.RawQuery != "x" || r.Header.Get("X-Amz-Acl") != "private" ||
		string(b) != "short" || r.ContentLength != 200256 {
		t.Errorf("overridden: %s acl %q body %q ContentLength %d", r.RequestURI, r.Header.Get("X-Amz-Acl"), b, r.ContentLength)
	}
	if got := c.Header("x-amz-acl"); got != "aws-exec-read" {
		t.Errorf("Server changed the capture: x-amz-acl %q", got)
	}
}

func TestServerRequest(t *testing.T) {
	// A target that does not parse as a request URI: split at '?'.
	r, err := ServerRequest("GET", "/a b/%zz?q=1 2", [][2]string{{"host", "h:1"}, {"X-A", "1"}, {"x-a", "2"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.URL.Path != "/a b/%zz" || r.URL.RawQuery != "q=1 2" || r.RequestURI != "/a b/%zz?q=1 2" {
		t.Errorf("URL %#v, RequestURI %q", r.URL, r.RequestURI)
	}
	if r.Host != "h:1" || len(r.Header) != 1 || strings.Join(r.Header.Values("X-A"), ",") != "1,2" {
		t.Errorf("Host %q, Header %v", r.Host, r.Header)
	}
	if r.ContentLength != 0 || r.Body != http.NoBody {
		t.Errorf("ContentLength %d, Body %v", r.ContentLength, r.Body)
	}

	body := []byte("abc")
	r, err = ServerRequest("PUT", "/k", nil, body)
	if err != nil {
		t.Fatal(err)
	}
	body[0] = 'X'
	if b, _ := io.ReadAll(r.Body); r.ContentLength != 3 || string(b) != "abc" {
		t.Errorf("ContentLength %d, body %q", r.ContentLength, b)
	}

	if _, err := ServerRequest("PUT", "/k", [][2]string{{"Content-Length", "x"}}, nil); err == nil {
		t.Error("bad Content-Length accepted")
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"not json", "{\n", ":1:"},
		{"no target", `{"method":"GET","headers":[]}` + "\n", ":1: no method or target"},
		{"header triple", `{"method":"GET","target":"/","headers":[["a","b"]]}` + "\n" + `{"method":"GET","target":"/","headers":[["a","b","c"]]}`, ":2: header"},
		{"bad base64", `{"method":"GET","target":"/","body_b64":"!"}`, ":1: body_b64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.jsonl")
			if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file loaded")
	}
}

func TestMutate(t *testing.T) {
	tests := []struct {
		s    string
		i    int
		want string
	}{
		{"a0", 1, "a1"}, {"9", 0, "0"}, {"y", 0, "z"}, {"z", 0, "a"}, {"Y", 0, "Z"}, {"Z", 0, "A"},
		{"a/b", 1, "aQb"}, {"%2F", 0, "Q2F"}, {" ", 0, "Q"},
	}
	for _, tc := range tests {
		if got := Mutate(tc.s, tc.i); got != tc.want {
			t.Errorf("Mutate(%q, %d) = %q, want %q", tc.s, tc.i, got, tc.want)
		}
	}
}
