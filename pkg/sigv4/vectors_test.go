package sigv4

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	suiteKeyID  = "AKIDEXAMPLE"
	suiteSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	suiteTime   = "20150830T123600Z"
)

func suiteVerifier(t testing.TB) *Verifier {
	return &Verifier{
		Keys: staticKeys{suiteKeyID: suiteSecret},
		Now:  fixedClock(mustTime(t, TimeFormat, suiteTime)),
	}
}

// TestAWSSuite verifies every signed request of AWS's published SigV4 test
// suite (testdata/aws-sig-v4-test-suite, service "service") and checks that
// the canonical request and string to sign this package builds match the
// suite's .creq and .sts files.
func TestAWSSuite(t *testing.T) {
	dirs, err := os.ReadDir("testdata/aws-sig-v4-test-suite")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 25 {
		t.Fatalf("only %d vectors found", len(dirs))
	}
	for _, d := range dirs {
		name := d.Name()
		t.Run(name, func(t *testing.T) {
			base := filepath.Join("testdata/aws-sig-v4-test-suite", name, name)
			r := parseSuiteRequest(t, readFile(t, base+".sreq"))
			body := ""
			if r.Body != nil {
				b, _ := io.ReadAll(r.Body)
				body = string(b)
				r.Body = io.NopCloser(strings.NewReader(body))
			}

			a, err := parseAuthorization(r.Header.Get("Authorization"))
			if err != nil {
				t.Fatal(err)
			}
			rawPath, rawQuery := requestTarget(r)
			block, list := canonicalHeaders(r, a.signedHeaders)
			cr := canonicalRequest(r.Method, canonicalURI(rawPath, a.cred.service), canonicalQuery(rawQuery, false),
				block, list, hashHex([]byte(body)))
			sts := stringToSign(suiteTime, a.cred.scope(), cr)
			wantCR := readFile(t, base+".creq")
			wantSTS := readFile(t, base+".sts")
			if cr != wantCR {
				t.Errorf("canonical request:\n%s\nwant:\n%s", cr, wantCR)
			}
			if sts != wantSTS {
				t.Errorf("string to sign:\n%s\nwant:\n%s", sts, wantSTS)
			}

			auth, err := suiteVerifier(t).Verify(r)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if auth.AccessKeyID != suiteKeyID || auth.Region != "us-east-1" || auth.Service != "service" {
				t.Errorf("auth = %+v", auth)
			}
			got, err := io.ReadAll(r.Body)
			if err != nil || string(got) != body {
				t.Errorf("body = %q, %v; want %q", got, err, body)
			}

			// A wrong signature must fail.
			bad := parseSuiteRequest(t, readFile(t, base+".sreq"))
			h := bad.Header.Get("Authorization")
			last := h[len(h)-1]
			flip := byte('0')
			if last == '0' {
				flip = '1'
			}
			bad.Header.Set("Authorization", h[:len(h)-1]+string(flip))
			if _, err := suiteVerifier(t).Verify(bad); !errors.Is(err, ErrSignature) {
				t.Errorf("tampered signature: err = %v, want ErrSignature", err)
			}
		})
	}
}

// TestAWSCAuthSuite verifies signed requests of the newer copy of the suite
// kept by aws-c-auth: UTF-8 paths, encoded query keys, a session token, a
// folded header, and presigned (query) requests whose payload is the empty
// body's hash.
func TestAWSCAuthSuite(t *testing.T) {
	files, err := filepath.Glob("testdata/aws-c-auth-v4/*/*-signed-request.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 7 {
		t.Fatalf("only %d files found", len(files))
	}
	for _, f := range files {
		name := filepath.Base(filepath.Dir(f)) + "/" + strings.TrimSuffix(filepath.Base(f), "-signed-request.txt")
		t.Run(name, func(t *testing.T) {
			r := parseSuiteRequest(t, readFile(t, f))
			auth, err := suiteVerifier(t).Verify(r)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if want := strings.HasSuffix(name, "/query"); auth.Presigned != want {
				t.Errorf("Presigned = %v, want %v", auth.Presigned, want)
			}
			// The request must fail an hour and a second later only when
			// presigned (X-Amz-Expires=3600), and always fail past the skew.
			v := suiteVerifier(t)
			v.Now = fixedClock(mustTime(t, TimeFormat, "20150830T133601Z"))
			r = parseSuiteRequest(t, readFile(t, f))
			_, err = v.Verify(r)
			if auth.Presigned && !errors.Is(err, ErrExpired) || !auth.Presigned && !errors.Is(err, ErrSkewed) {
				t.Errorf("an hour later: err = %v", err)
			}
		})
	}
}
