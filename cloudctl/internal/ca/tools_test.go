package ca

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// These tests check the CA against openssl. They skip when openssl is
// missing, except in CI.

func needOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("openssl is required in CI: %v", err)
		}
		t.Skipf("openssl not installed: %v", err)
	}
}

// openssl runs openssl; its error carries what openssl said.
func openssl(stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.Command("openssl", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("openssl %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIssueUserOpenSSLVerify(t *testing.T) {
	needOpenSSL(t)
	tests := []struct {
		name string
		ca   func(*testing.T) *CA
	}{
		{"new ca", newCA},
		{"fixture ca", fixtureCA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.ca(t)
			certPEM, keyPEM, err := c.IssueUser("123456789012", "alice", now)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			caFile := writeFile(t, dir, "cloud-cert.pem", c.CertPEM())
			certFile := writeFile(t, dir, "cert.pem", certPEM)
			keyFile := writeFile(t, dir, "pk.pem", keyPEM)
			at := strconv.FormatInt(now.Unix(), 10)

			out, err := openssl(nil, "verify", "-attime", at, "-CAfile", caFile, certFile)
			if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), ": OK") {
				t.Errorf("openssl verify: %q, %v", out, err)
			}
			// openssl disagrees too: a different CA, and after expiry.
			other := writeFile(t, dir, "other.pem", readTestdata(t, "user-cert.pem"))
			if _, err := openssl(nil, "verify", "-attime", at, "-CAfile", other, certFile); err == nil {
				t.Error("openssl verify accepted the certificate against an unrelated CA")
			}
			late := strconv.FormatInt(now.AddDate(5, 0, 1).Unix(), 10)
			if _, err := openssl(nil, "verify", "-attime", late, "-CAfile", caFile, certFile); err == nil {
				t.Error("openssl verify accepted an expired certificate")
			}

			// The key is the certificate's, as openssl sees them.
			fromKey, err1 := openssl(nil, "pkey", "-in", keyFile, "-pubout")
			fromCert, err2 := openssl(nil, "x509", "-in", certFile, "-noout", "-pubkey")
			if err1 != nil || err2 != nil || !bytes.Equal(fromKey, fromCert) {
				t.Errorf("public keys differ:\n%s\n%s", fromKey, fromCert)
			}
		})
	}
}

// TestDecryptOpenSSL decrypts what openssl encrypted for the CA
// certificate with PKCS#1 v1.5 padding, as the bundle tools do.
func TestDecryptOpenSSL(t *testing.T) {
	needOpenSSL(t)
	tests := []struct {
		name  string
		ca    func(*testing.T) *CA
		plain []byte
		args  []string
	}{
		{"new ca, pkeyutl, hex key", newCA, []byte("00112233445566778899aabbccddeeff"),
			[]string{"pkeyutl", "-encrypt", "-certin", "-pkeyopt", "rsa_padding_mode:pkcs1"}},
		{"fixture ca, pkeyutl, binary", fixtureCA, []byte{0, 1, 2, 0xff, 0, 0x80, 7},
			[]string{"pkeyutl", "-encrypt", "-certin", "-pkeyopt", "rsa_padding_mode:pkcs1"}},
		{"fixture ca, rsautl as euca2ools runs it", fixtureCA, []byte("ffeeddccbbaa99887766554433221100"),
			[]string{"rsautl", "-encrypt", "-certin", "-pkcs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.ca(t)
			certFile := writeFile(t, t.TempDir(), "cloud-cert.pem", c.CertPEM())
			ct, err := openssl(tc.plain, append(tc.args, "-inkey", certFile)...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Decrypt(ct)
			if err != nil || !bytes.Equal(got, tc.plain) {
				t.Errorf("Decrypt = %x, %v; want %x", got, err, tc.plain)
			}
			fallback := bytes.Repeat([]byte{'x'}, len(tc.plain))
			got, err = c.DecryptSessionKey(ct, fallback)
			if err != nil || !bytes.Equal(got, tc.plain) {
				t.Errorf("DecryptSessionKey = %x, %v; want %x", got, err, tc.plain)
			}
		})
	}
}
