package ca

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// now is the fixed time the tests make and check certificates at.
var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testCA is one CA made by New, shared: RSA key generation is slow.
var testCA = sync.OnceValues(func() (*CA, error) { return New("koala-test", now) })

func newCA(t *testing.T) *CA {
	t.Helper()
	c, err := testCA()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fixtureCA(t *testing.T) *CA {
	t.Helper()
	c, err := Load(readTestdata(t, "cloud-cert.pem"), readTestdata(t, "cloud-pk.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNew(t *testing.T) {
	c := newCA(t)
	cert := c.Certificate()
	if err := cert.CheckSignatureFrom(cert); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"common name", cert.Subject.CommonName == "koala-test" && cert.Issuer.CommonName == "koala-test"},
		{"is a CA", cert.BasicConstraintsValid && cert.IsCA},
		{"signs end entities only", cert.MaxPathLen == 0 && cert.MaxPathLenZero},
		{"key usage", cert.KeyUsage == x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment},
		{"subject key id", len(cert.SubjectKeyId) != 0},
		{"not before", cert.NotBefore.Equal(now.Add(-Backdate))},
		{"not after", cert.NotAfter.Equal(now.AddDate(10, 0, 0))},
		{"rsa 2048", cert.PublicKey.(*rsa.PublicKey).N.BitLen() == 2048},
		{"positive serial", cert.SerialNumber.Sign() > 0},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Errorf("certificate fails %q", tc.name)
			}
		})
	}
}

func TestNewBadName(t *testing.T) {
	for _, name := range []string{"", strings.Repeat("x", 65), "a\nb", "bad\xffutf8"} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(name, now); !errors.Is(err, ErrInvalid) {
				t.Errorf("New(%q) err = %v, want ErrInvalid", name, err)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	made := newCA(t)
	fixture := fixtureCA(t)
	pkcs8 := func(c *CA) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(c.key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	tests := []struct {
		name      string
		ca        *CA
		cert, key []byte
	}{
		{"new, pkcs1", made, made.CertPEM(), made.KeyPEM()},
		{"new, pkcs8", made, made.CertPEM(), pkcs8(made)},
		{"fixture as given", fixture, readTestdata(t, "cloud-cert.pem"), readTestdata(t, "cloud-pk.pem")},
		{"fixture re-encoded", fixture, fixture.CertPEM(), fixture.KeyPEM()},
		{"text before pem", made, append([]byte("Certificate:\n  subject: x\n"), made.CertPEM()...), made.KeyPEM()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.cert, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.Certificate().Raw, tc.ca.Certificate().Raw) {
				t.Error("certificate differs")
			}
			if !c.key.Equal(tc.ca.key) {
				t.Error("key differs")
			}
			if !bytes.Equal(c.KeyPEM(), tc.ca.KeyPEM()) || !bytes.HasPrefix(c.KeyPEM(), []byte("-----BEGIN RSA PRIVATE KEY-----\n")) {
				t.Error("KeyPEM is not the same PKCS#1 block")
			}
		})
	}
}

func TestLoadFixture(t *testing.T) {
	c := fixtureCA(t)
	if cn := c.Certificate().Subject.CommonName; cn != "test-cloud" {
		t.Errorf("common name %q", cn)
	}
	if !bytes.Equal(c.CertPEM(), readTestdata(t, "cloud-cert.pem")) {
		t.Error("CertPEM differs from the file it was loaded from")
	}
}

func TestLoadRejects(t *testing.T) {
	made := newCA(t)
	cloudCert, cloudKey := readTestdata(t, "cloud-cert.pem"), readTestdata(t, "cloud-pk.pem")
	userCert, userKey := readTestdata(t, "user-cert.pem"), readTestdata(t, "user-pk.pem")
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ecCertDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: now}, &x509.Certificate{SerialNumber: big.NewInt(1)}, &ecKey.PublicKey, ecKey)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(made.KeyPEM())
	encrypted := pem.EncodeToMemory(&pem.Block{Type: block.Type, Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: block.Bytes})
	armor := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }

	tests := []struct {
		name      string
		cert, key []byte
		want      error
	}{
		{"empty cert", nil, cloudKey, ErrCert},
		{"garbage cert", []byte("hello"), cloudKey, ErrCert},
		{"key as cert", cloudKey, cloudKey, ErrCert},
		{"bad cert der", armor("CERTIFICATE", []byte("junk")), cloudKey, ErrCert},
		{"ecdsa cert", armor("CERTIFICATE", ecCertDER), cloudKey, ErrCert},
		{"empty key", cloudCert, nil, ErrKey},
		{"cert as key", cloudCert, cloudCert, ErrKey},
		{"bad pkcs1 der", cloudCert, armor("RSA PRIVATE KEY", []byte("junk")), ErrKey},
		{"bad pkcs8 der", cloudCert, armor("PRIVATE KEY", []byte("junk")), ErrKey},
		{"ecdsa key", cloudCert, armor("PRIVATE KEY", ecDER), ErrKey},
		{"encrypted key", made.CertPEM(), encrypted, ErrKey},
		{"pkcs8 encrypted", cloudCert, armor("ENCRYPTED PRIVATE KEY", []byte("x")), ErrKey},
		{"user key for cloud cert", cloudCert, userKey, ErrMismatch},
		{"cloud key for user cert", userCert, cloudKey, ErrMismatch},
		{"other ca's key", cloudCert, made.KeyPEM(), ErrMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(tc.cert, tc.key); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func parseIssued(t *testing.T, certPEM, keyPEM []byte) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	cb, rest := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("certificate PEM:\n%s", certPEM)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	kb, rest := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "RSA PRIVATE KEY" || len(rest) != 0 {
		t.Fatalf("key PEM:\n%s", keyPEM)
	}
	key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestIssueUser(t *testing.T) {
	tests := []struct {
		name string
		ca   func(*testing.T) *CA
		at   time.Time
	}{
		{"new ca", newCA, now},
		{"fixture ca", fixtureCA, now},
		{"new ca, late in its life", newCA, now.AddDate(8, 0, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.ca(t)
			certPEM, keyPEM, err := c.IssueUser("123456789012", "alice", tc.at)
			if err != nil {
				t.Fatal(err)
			}
			cert, key := parseIssued(t, certPEM, keyPEM)

			roots := x509.NewCertPool()
			roots.AddCert(c.Certificate())
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: tc.at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("does not verify against the CA: %v", err)
			}
			if !key.PublicKey.Equal(cert.PublicKey) {
				t.Error("key does not belong to the certificate")
			}
			if bits := key.N.BitLen(); bits != KeyBits {
				t.Errorf("key of %d bits", bits)
			}
			s := cert.Subject
			if s.CommonName != "alice" || len(s.OrganizationalUnit) != 1 || s.OrganizationalUnit[0] != "123456789012" ||
				len(s.Organization) != 1 || s.Organization[0] != c.Certificate().Subject.CommonName {
				t.Errorf("subject %s", s)
			}
			if cert.IsCA || cert.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
				t.Errorf("IsCA %v, key usage %v", cert.IsCA, cert.KeyUsage)
			}
			wantAfter := tc.at.AddDate(5, 0, 0)
			if caAfter := c.Certificate().NotAfter; wantAfter.After(caAfter) {
				wantAfter = caAfter
			}
			if !cert.NotBefore.Equal(tc.at.Add(-Backdate)) || !cert.NotAfter.Equal(wantAfter) {
				t.Errorf("valid %v to %v, want %v to %v", cert.NotBefore, cert.NotAfter, tc.at.Add(-Backdate), wantAfter)
			}
		})
	}
}

func TestIssueUserRejects(t *testing.T) {
	c := newCA(t)
	// A self-signed certificate that is not a CA.
	key := c.key
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: now, NotAfter: now.AddDate(1, 0, 0), BasicConstraintsValid: true,
	}, &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "leaf"}}, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := Load(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), c.KeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, account, user string
		ca                  *CA
		want                error
	}{
		{"empty account", "", "alice", c, ErrInvalid},
		{"short account", "12345678901", "alice", c, ErrInvalid},
		{"letter in account", "12345678901a", "alice", c, ErrInvalid},
		{"empty name", "123456789012", "", c, ErrInvalid},
		{"not a ca", "123456789012", "alice", leaf, ErrNotCA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := tc.ca.IssueUser(tc.account, tc.user, now); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

var (
	encKeyRE = regexp.MustCompile(`<ec2_encrypted_key[^>]*>([0-9a-f]+)<`)
	encIVRE  = regexp.MustCompile(`<ec2_encrypted_iv>([0-9a-f]+)<`)
)

// TestDecryptBundles decrypts the AES key and IV that euca2ools and
// ec2-ami-tools encrypted for the fixture cloud certificate, and checks
// them on the first block of each bundle's first part: tar | gzip | AES,
// so it must decrypt to a gzip header.
func TestDecryptBundles(t *testing.T) {
	c := fixtureCA(t)
	for _, tool := range []string{"euca2ools", "ec2-ami-tools"} {
		t.Run(tool, func(t *testing.T) {
			manifest := readTestdata(t, tool+".manifest.xml")
			head := readTestdata(t, tool+".part.head")
			var secrets [2][]byte // key, iv
			for i, re := range []*regexp.Regexp{encKeyRE, encIVRE} {
				m := re.FindSubmatch(manifest)
				if m == nil {
					t.Fatalf("%s not in manifest", re)
				}
				ct, err := hex.DecodeString(string(m[1]))
				if err != nil {
					t.Fatal(err)
				}
				plain, err := c.Decrypt(ct)
				if err != nil {
					t.Fatal(err)
				}
				fallback := make([]byte, 32)
				for i := range fallback {
					fallback[i] = 'f'
				}
				session, err := c.DecryptSessionKey(ct, fallback)
				if err != nil || !bytes.Equal(session, plain) {
					t.Errorf("DecryptSessionKey = %q, %v; Decrypt gave %q", session, err, plain)
				}
				// Both tools encrypt the hex text of the 16-byte key and IV.
				if secrets[i], err = hex.DecodeString(string(plain)); err != nil || len(secrets[i]) != 16 {
					t.Fatalf("decrypted %q, want 32 hex digits", plain)
				}
			}
			block, err := aes.NewCipher(secrets[0])
			if err != nil {
				t.Fatal(err)
			}
			out := make([]byte, aes.BlockSize)
			cipher.NewCBCDecrypter(block, secrets[1]).CryptBlocks(out, head[:aes.BlockSize])
			if !bytes.HasPrefix(out, []byte{0x1f, 0x8b, 0x08}) {
				t.Errorf("first block decrypts to %x, want a gzip header", out)
			}
		})
	}
}

func TestDecryptFailures(t *testing.T) {
	c := newCA(t)
	size := c.key.Size()
	random := make([]byte, size)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	random[0] = 0 // below the modulus, and almost surely not PKCS#1 v1.5
	good, err := rsa.EncryptPKCS1v15(rand.Reader, &c.key.PublicKey, []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	fallback := []byte("ffffffffffffffffffffffffffffffff")

	tests := []struct {
		name         string
		ciphertext   []byte
		fallback     []byte
		wantDecrypt  bool   // Decrypt fails with ErrDecrypt
		wantSession  []byte // nil: DecryptSessionKey fails
		wantErrIsSes error
	}{
		{"bad padding", random, fallback, true, fallback, nil},
		{"too short", random[:size-1], fallback, true, nil, ErrDecrypt},
		{"too long", append(bytes.Clone(random), 0), fallback, true, nil, ErrDecrypt},
		{"empty", nil, fallback, true, nil, ErrDecrypt},
		{"wrong length plaintext", good, fallback[:16], false, fallback[:16], nil},
		{"empty fallback", good, nil, false, nil, ErrInvalid},
		{"fallback too long for the key", good, make([]byte, size), false, nil, ErrDecrypt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Decrypt(tc.ciphertext)
			if tc.wantDecrypt != errors.Is(err, ErrDecrypt) {
				t.Errorf("Decrypt err = %v", err)
			}
			got, err := c.DecryptSessionKey(tc.ciphertext, tc.fallback)
			if tc.wantSession == nil {
				if !errors.Is(err, tc.wantErrIsSes) {
					t.Errorf("DecryptSessionKey err = %v, want %v", err, tc.wantErrIsSes)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.wantSession) {
				t.Errorf("DecryptSessionKey = %q, %v; want %q", got, err, tc.wantSession)
			}
		})
	}
}
