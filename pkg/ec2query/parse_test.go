package ec2query

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseGET(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  url.Values
	}{
		{"empty", "", url.Values{}},
		{"simple", "Action=DescribeInstances&Version=2016-11-15",
			url.Values{"Action": {"DescribeInstances"}, "Version": {"2016-11-15"}}},
		{"escapes and plus", "Filter.1.Name=tag%3AName&Filter.1.Value.1=web+server%2A",
			url.Values{"Filter.1.Name": {"tag:Name"}, "Filter.1.Value.1": {"web server*"}}},
		{"escaped name", "Instance%49d.1=i-1", url.Values{"InstanceId.1": {"i-1"}}},
		{"duplicates keep order", "KeyName=a&KeyName=b&KeyName=", url.Values{"KeyName": {"a", "b", ""}}},
		{"semicolon is data", "GroupDescription=a;b", url.Values{"GroupDescription": {"a;b"}}},
		{"no equals sign", "DryRun&Action=X", url.Values{"DryRun": {""}, "Action": {"X"}}},
		{"empty segments and names", "&&a=1&=x&&b=2&", url.Values{"a": {"1"}, "b": {"2"}}},
		{"value with equals", "UserData=ZWNobw==", url.Values{"UserData": {"ZWNobw=="}}},
		{"unicode", "GroupDescription=caf%C3%A9+%E2%82%AC", url.Values{"GroupDescription": {"café €"}}},
		{"case matters", "instanceId=1&InstanceId=2", url.Values{"instanceId": {"1"}, "InstanceId": {"2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/?"+tt.query, nil)
			got, err := Parse(r, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseGETIgnoresBody(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/?Action=A", strings.NewReader("Action=B&X=1"))
	got, err := Parse(r, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := (url.Values{"Action": {"A"}}); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestParsePOST(t *testing.T) {
	tests := []struct {
		name        string
		target      string
		contentType string
		body        string
		want        url.Values
	}{
		{"form", "/", "application/x-www-form-urlencoded; charset=utf-8",
			"Action=CreateKeyPair&KeyName=my+key&Version=2016-11-15",
			url.Values{"Action": {"CreateKeyPair"}, "KeyName": {"my key"}, "Version": {"2016-11-15"}}},
		{"charset in upper case", "/", "application/x-www-form-urlencoded; charset=UTF-8", "a=1", url.Values{"a": {"1"}}},
		{"type in mixed case", "/", "Application/X-WWW-Form-URLEncoded", "a=1", url.Values{"a": {"1"}}},
		{"no content type", "/", "", "a=1", url.Values{"a": {"1"}}},
		{"body and query merged, body first", "/?Action=FromQuery&X-Amz-Date=20261121T000000Z",
			"application/x-www-form-urlencoded", "Action=FromBody&KeyName=k",
			url.Values{"Action": {"FromBody", "FromQuery"}, "KeyName": {"k"}, "X-Amz-Date": {"20261121T000000Z"}}},
		{"query only, empty body with any type", "/?Action=DescribeRegions", "application/json", "",
			url.Values{"Action": {"DescribeRegions"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tt.target, strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			got, err := Parse(r, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if p := NewParams(got); p.String("Action") != got.Get("Action") {
				t.Fatalf("Params and Values.Get disagree on Action")
			}
		})
	}
}

// errReader fails every read.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestParseErrors(t *testing.T) {
	errRead := errors.New("x-amz-content-sha256 mismatch")
	tests := []struct {
		name    string
		method  string
		target  string
		ctype   string
		body    io.Reader
		length  int64 // Content-Length; -1 for unknown (chunked)
		maxBody int64
		want    error
	}{
		{"announced length over limit", "POST", "/", "", strings.NewReader("a=1"), 100, 10, ErrBodyTooLarge},
		{"read past limit", "POST", "/", "", strings.NewReader("a=1234567890"), -1, 10, ErrBodyTooLarge},
		{"default limit", "POST", "/", "", strings.NewReader("a=" + strings.Repeat("x", DefaultMaxBody)), -1, 0, ErrBodyTooLarge},
		{"bad escape in body", "POST", "/", "", strings.NewReader("a=%zz"), 5, 0, ErrMalformed},
		{"bad escape in name", "POST", "/", "", strings.NewReader("%4=1"), 4, 0, ErrMalformed},
		{"bad escape in query", "GET", "/?a=%", "", nil, 0, 0, ErrMalformed},
		{"invalid UTF-8 value", "GET", "/?a=%ff", "", nil, 0, 0, ErrMalformed},
		{"invalid UTF-8 name", "GET", "/?%c3%28=1", "", nil, 0, 0, ErrMalformed},
		{"json body", "POST", "/", "application/json", strings.NewReader(`{"Action":"X"}`), 14, 0, ErrContentType},
		{"multipart body", "POST", "/", "multipart/form-data; boundary=x", strings.NewReader("--x--"), 5, 0, ErrContentType},
		{"unparsable content type", "POST", "/", "application/x-www-form-urlencoded; =", strings.NewReader("a=1"), 3, 0, ErrContentType},
		{"put", "PUT", "/", "", nil, 0, 0, ErrMethod},
		{"delete", "DELETE", "/?Action=X", "", nil, 0, 0, ErrMethod},
		{"read error is wrapped", "POST", "/", "", errReader{errRead}, -1, 0, errRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			if tt.body != nil {
				r.Body = io.NopCloser(tt.body)
			}
			r.ContentLength = tt.length
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			v, err := Parse(r, tt.maxBody)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, %v; want error %v", v, err, tt.want)
			}
			if msg := err.Error(); msg[:1] != strings.ToLower(msg[:1]) {
				t.Errorf("error %q does not start in lower case", err)
			}
		})
	}
}

func TestParseBodyAtLimit(t *testing.T) {
	body := "a=" + strings.Repeat("x", 8)
	for _, length := range []int64{int64(len(body)), -1} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.ContentLength = length
		v, err := Parse(r, int64(len(body)))
		if err != nil {
			t.Fatalf("Content-Length %d: %v", length, err)
		}
		if v.Get("a") != strings.Repeat("x", 8) {
			t.Fatalf("Content-Length %d: got %v", length, v)
		}
	}
}
