package sigv2

import (
	"context"
	"errors"
	"github.com/koala-cloud/koala/internal/capture"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzS3Authorization feeds arbitrary Authorization headers and dates to
// the S3 verifier.
func FuzzS3Authorization(f *testing.F) {
	for _, s := range []string{
		"AWS AKIDEXAMPLE5254E42B:5iHuuVSqgKgzEettAKZkP0QwLsY=",
		"AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
		"AWS :",
		"AWS a:b:c",
		"AWS  x : y ",
		"AWS4-HMAC-SHA256 Credential=x",
		"",
	} {
		f.Add(s, "Sat, 21 Nov 2026 23:33:40 -0000")
	}
	f.Add("AWS AKID:c2ln", "")
	f.Fuzz(func(t *testing.T, h, date string) {
		if id, sig, err := parseS3Authorization(h); err == nil {
			if id == "" || len(sig) == 0 {
				t.Fatalf("accepted %q as %q, %x", h, id, sig)
			}
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignature) {
			t.Fatalf("unexpected error class %v", err)
		}
		r := serverRequest(t, "GET", "/capbucket?max-keys=0", [][2]string{{"Host", "h"}, {"Authorization", h}, {"Date", date}}, nil)
		v := &S3Verifier{Keys: staticKeys{capture.KeyID: capture.Secret}, Now: fixedClock(time.Date(2026, 11, 21, 23, 33, 40, 0, time.UTC))}
		// Only the captured signature over the captured date can verify.
		if _, err := v.Verify(r, ""); err == nil && (!strings.Contains(h, "5iHuuVSqgKgzEettAKZkP0QwLsY") || date != "Sat, 21 Nov 2026 23:33:40 -0000") {
			t.Fatalf("verified %q with date %q", h, date)
		}
	})
}

// FuzzQueryVerify feeds arbitrary EC2 Query parameter sets to the
// verifier.
func FuzzQueryVerify(f *testing.F) {
	f.Add("SignatureVersion=2&Action=DescribeInstances&Version=2013-02-01&Signature=bqsEE%2BzV45a8w%2BzdHfCCQNZ9InYQXeFKGaIaVz7Tqmk%3D&AWSAccessKeyId=AKIDEXAMPLE5254E42B&SignatureMethod=HmacSHA256&Timestamp=2026-11-21T23%3A33%3A28.629Z", "127.0.0.1:18780")
	f.Add("AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Action=DescribeJobFlows&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2011-10-03T15%3A19%3A30&Version=2009-03-31&Signature=i91nKc4PWAt0JJIdXwz9HxZCJDdiy6cf%2FMj6vPxyYIs%3D", "elasticmapreduce.amazonaws.com")
	f.Add("SignatureVersion=1&Signature=x&AWSAccessKeyId=a", "h")
	f.Add("SignatureVersion=2&SignatureMethod=HmacSHA1&Signature=&Expires=2026-01-01T00:00:00Z&Timestamp=x", "[::1]:80")
	f.Fuzz(func(t *testing.T, query, host string) {
		params, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		v := &QueryVerifier{Keys: staticKeys{capture.KeyID: capture.Secret}, Now: fixedClock(time.Date(2026, 11, 21, 23, 33, 28, 0, time.UTC))}
		_, err = v.Verify(context.Background(), "POST", host, "/", params)
		if err == nil {
			if params.Get("AWSAccessKeyId") != capture.KeyID {
				t.Fatalf("verified %q for another key", query)
			}
			return
		}
		for _, s := range []error{ErrMalformed, ErrUnknownKey, ErrSignature, ErrExpired, ErrSkewed, ErrUnsupported} {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("unexpected error class %v", err)
	})
}
