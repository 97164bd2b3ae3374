package sigv2

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/koala-cloud/koala/internal/capture"
)

// TestQueryExamples verifies the example of AWS's "Signature Version 2
// signing process" page and goamz's /services/Cloud example (a path and a
// port in the host).
func TestQueryExamples(t *testing.T) {
	tests := []struct {
		name, method, host, path, keyID, secret, query, sts string
	}{
		{"aws general reference", "GET", "elasticmapreduce.amazonaws.com", "/", docKeyID, docSecret,
			"AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Action=DescribeJobFlows&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2011-10-03T15%3A19%3A30&Version=2009-03-31&Signature=i91nKc4PWAt0JJIdXwz9HxZCJDdiy6cf%2FMj6vPxyYIs%3D",
			"GET\nelasticmapreduce.amazonaws.com\n/\nAWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Action=DescribeJobFlows&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2011-10-03T15%3A19%3A30&Version=2009-03-31"},
		{"goamz services path", "GET", "localhost:4444", "/services/Cloud", "abc", "123",
			"AWSAccessKeyId=abc&Action=RebootInstances&InstanceId.1=i-10a64379&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2012-01-01T00%3A00%3A00Z&Version=2011-12-15&Signature=gdG%2FvEm%2Bc6ehhhfkrJy3%2BwuVzw%2FrzKR42TYelMwti7M%3D",
			""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			params, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			if tc.sts != "" {
				if got := stringToSignQuery(tc.method, tc.host, tc.path, params); got != tc.sts {
					t.Errorf("string to sign %q", got)
				}
			}
			ts, _ := parseTimestamp(params.Get("Timestamp"))
			v := &QueryVerifier{Keys: staticKeys{tc.keyID: tc.secret}, Now: fixedClock(ts.Add(time.Minute))}
			if _, err := v.Verify(context.Background(), tc.method, tc.host, tc.path, params); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(context.Background(), "POST", tc.host, tc.path, params); !errors.Is(err, ErrSignature) {
				t.Errorf("method changed: %v", err)
			}
		})
	}
}

// TestCapturedQuerySigV2 verifies the ec2-api-tools requests (POST form,
// HmacSHA256) with the capture time, and checks that changing any
// parameter, the host, the path or the method fails.
func TestCapturedQuerySigV2(t *testing.T) {
	n := 0
	for _, c := range loadCaptured(t) {
		params, err := url.ParseQuery(string(c.Body))
		if err != nil || !IsQuerySigned(params) {
			continue
		}
		n++
		t.Run(c.Name()+"_"+params.Get("Action"), func(t *testing.T) {
			ctx := context.Background()
			v := &QueryVerifier{Keys: staticKeys{capture.KeyID: capture.Secret}, Now: fixedClock(c.Time)}
			host := c.Header("Host")
			auth, err := v.Verify(ctx, c.Method, host, c.Target, params)
			if err != nil {
				t.Fatalf("line %d: %v", c.Line, err)
			}
			if auth.AccessKeyID != capture.KeyID || auth.Time.Sub(c.Time).Abs() > time.Second {
				t.Errorf("auth %+v", auth)
			}
			for k, vs := range params {
				if k == "Signature" {
					continue
				}
				for _, i := range []int{0, len(vs[0]) - 1} {
					p := cloneValues(params)
					p.Set(k, capture.Mutate(vs[0], i))
					if _, err := v.Verify(ctx, c.Method, host, c.Target, p); err == nil {
						t.Errorf("%s=%s verified", k, p.Get(k))
					}
				}
				p := cloneValues(params)
				p.Del(k)
				if _, err := v.Verify(ctx, c.Method, host, c.Target, p); err == nil {
					t.Errorf("without %s: verified", k)
				}
			}
			p := cloneValues(params)
			p.Set("Extra", "1")
			if _, err := v.Verify(ctx, c.Method, host, c.Target, p); !errors.Is(err, ErrSignature) {
				t.Errorf("extra parameter: %v", err)
			}
			for _, h := range []string{"127.0.0.1:18781", "127.0.0.2:18780", "localhost:18780"} {
				if _, err := v.Verify(ctx, c.Method, h, c.Target, params); !errors.Is(err, ErrSignature) {
					t.Errorf("host %s: %v", h, err)
				}
			}
			if _, err := v.Verify(ctx, c.Method, host, "/services/Eucalyptus", params); !errors.Is(err, ErrSignature) {
				t.Errorf("path changed: %v", err)
			}
			if _, err := v.Verify(ctx, "GET", host, c.Target, params); !errors.Is(err, ErrSignature) {
				t.Errorf("method changed: %v", err)
			}
			v.Now = fixedClock(c.Time.Add(16 * time.Minute))
			if _, err := v.Verify(ctx, c.Method, host, c.Target, params); !errors.Is(err, ErrSkewed) {
				t.Errorf("16 minutes later: %v", err)
			}
		})
	}
	if n != 6 {
		t.Errorf("%d EC2 query requests, want 6", n)
	}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func TestSignQueryRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 21, 23, 33, 28, 0, time.UTC)
	params := url.Values{"Action": {"RunInstances"}, "UserData": {"ZWNobyBoZWxsbw=="}, "Filter.1.Value.1": {"web*"}, "Name": {"a b/c~d"}}
	if err := SignQuery("POST", "127.0.0.1:8773", "/", params, "AKID", "secret", now); err != nil {
		t.Fatal(err)
	}
	// the form travels encoded and is decoded by the server
	decoded, err := url.ParseQuery(params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	v := &QueryVerifier{Keys: staticKeys{"AKID": "secret"}, Now: fixedClock(now)}
	if _, err := v.Verify(context.Background(), "POST", "127.0.0.1:8773", "/", decoded); err != nil {
		t.Fatal(err)
	}
	// a client that signed the host without its port
	p2 := url.Values{"Action": {"DescribeRegions"}}
	if err := SignQuery("GET", "127.0.0.1", "/", p2, "AKID", "secret", now); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), "GET", "127.0.0.1:8773", "/", p2); err != nil {
		t.Errorf("host signed without port: %v", err)
	}
}

func TestQueryVerifyErrors(t *testing.T) {
	now := time.Date(2026, 11, 21, 23, 33, 28, 0, time.UTC)
	signed := func(edit func(url.Values)) url.Values {
		p := url.Values{"Action": {"DescribeInstances"}}
		if err := SignQuery("POST", "h", "/", p, "AKID", "secret", now); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(p)
		}
		return p
	}
	set := func(k, v string) func(url.Values) { return func(p url.Values) { p.Set(k, v) } }
	del := func(k string) func(url.Values) { return func(p url.Values) { p.Del(k) } }
	expiresIn := func(d time.Duration) url.Values {
		p := url.Values{"Action": {"DescribeInstances"}, "Expires": {now.Add(d).Format(time.RFC3339)}}
		if err := SignQuery("POST", "h", "/", p, "AKID", "secret", now); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		params url.Values
		clock  time.Duration
		want   error
	}{
		{"ok", signed(nil), 0, nil},
		{"sha1", func() url.Values {
			p := url.Values{"Action": {"X"}, "AWSAccessKeyId": {"AKID"}, "SignatureVersion": {"2"}, "SignatureMethod": {HmacSHA1},
				"Timestamp": {now.Format(time.RFC3339)}}
			p.Set("Signature", base64.StdEncoding.EncodeToString(signQuery(sha1.New, "secret", stringToSignQuery("POST", "h", "/", p))))
			return p
		}(), 0, nil},
		{"missing key id", signed(del("AWSAccessKeyId")), 0, ErrMalformed},
		{"missing signature", signed(del("Signature")), 0, ErrMalformed},
		{"repeated signature", signed(func(p url.Values) { p.Add("Signature", "x") }), 0, ErrMalformed},
		{"version 1", signed(set("SignatureVersion", "1")), 0, ErrUnsupported},
		{"version missing", signed(del("SignatureVersion")), 0, ErrMalformed},
		{"method md5", signed(set("SignatureMethod", "HmacMD5")), 0, ErrUnsupported},
		{"signature not base64", signed(set("Signature", "***")), 0, ErrSignature},
		{"no timestamp", signed(del("Timestamp")), 0, ErrMalformed},
		{"bad timestamp", signed(set("Timestamp", "yesterday")), 0, ErrMalformed},
		{"timestamp and expires", signed(set("Expires", now.Format(time.RFC3339))), 0, ErrMalformed},
		{"unknown key", signed(set("AWSAccessKeyId", "NOBODY")), 0, ErrUnknownKey},
		{"skew ahead", signed(nil), 16 * time.Minute, ErrSkewed},
		{"skew behind", signed(nil), -16 * time.Minute, ErrSkewed},
		{"expires ok", expiresIn(time.Hour), 59 * time.Minute, nil},
		{"expires passed", expiresIn(time.Hour), 61 * time.Minute, ErrExpired},
		{"parameter added", signed(set("DryRun", "true")), 0, ErrSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := &QueryVerifier{Keys: staticKeys{"AKID": "secret"}, Now: fixedClock(now.Add(tc.clock))}
			_, err := v.Verify(context.Background(), "POST", "h", "/", tc.params)
			if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
