package ca

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
	"unicode/utf8"
)

// Errors callers test for.
var (
	ErrCert     = errors.New("invalid certificate")
	ErrKey      = errors.New("invalid private key")
	ErrMismatch = errors.New("private key does not match certificate")
	ErrNotCA    = errors.New("certificate cannot sign certificates")
	ErrInvalid  = errors.New("invalid argument")
	ErrDecrypt  = errors.New("decryption failed")
)

// KeyBits is the size of the RSA keys New and IssueUser make, as
// Eucalyptus used.
const KeyBits = 2048

// Validity periods. Certificates start Backdate before the time given, so
// that a host whose clock is a little behind still accepts them.
const (
	CAYears   = 10
	UserYears = 5
	Backdate  = 5 * time.Minute
)

// CA is the cloud's RSA key and certificate. It is safe for concurrent
// use.
type CA struct {
	cert *x509.Certificate
	key  *rsa.PrivateKey
}

// New makes a CA for the cloud called name: an RSA key of KeyBits bits and
// a self-signed certificate with that name as its common name, valid for
// CAYears from now, that may sign end-entity certificates only.
func New(name string, now time.Time) (*CA, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return nil, fmt.Errorf("new ca %s: %w", name, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, fmt.Errorf("new ca %s: %w", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.AddDate(CAYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("new ca %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new ca %s: %w", name, err)
	}
	return &CA{cert: cert, key: key}, nil
}

// Load reads a CA from PEM: the first CERTIFICATE block of certPEM, and an
// unencrypted RSA key in PKCS#1 ("RSA PRIVATE KEY") or PKCS#8 ("PRIVATE
// KEY") form that must belong to the certificate.
func Load(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca %s: %w", cert.Subject.CommonName, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("load ca %s: %w", cert.Subject.CommonName, ErrMismatch)
	}
	return &CA{cert: cert, key: key}, nil
}

// Certificate returns the CA's certificate. Callers must not modify it.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// CertPEM returns the certificate as a PEM CERTIFICATE block.
func (c *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
}

// KeyPEM returns the private key as a PKCS#1 PEM "RSA PRIVATE KEY" block,
// whatever form it was loaded from.
func (c *CA) KeyPEM() []byte { return encodeKey(c.key) }

// IssueUser makes a key pair and a certificate signed by the CA for an
// account's user to sign bundles with: common name name, organizational
// unit the 12-digit accountID, organization the CA's common name; valid
// for UserYears from now, but never past the CA certificate. It returns
// the certificate and the PKCS#1 private key as PEM.
func (c *CA) IssueUser(accountID, name string, now time.Time) (certPEM, keyPEM []byte, err error) {
	if !isAccountID(accountID) {
		return nil, nil, fmt.Errorf("issue user certificate: account id %q: %w", accountID, ErrInvalid)
	}
	if err := checkName(name); err != nil {
		return nil, nil, fmt.Errorf("issue user certificate for %s: %w", accountID, err)
	}
	if !c.cert.IsCA || (c.cert.KeyUsage != 0 && c.cert.KeyUsage&x509.KeyUsageCertSign == 0) {
		return nil, nil, fmt.Errorf("issue user certificate for %s: %s: %w", accountID, c.cert.Subject.CommonName, ErrNotCA)
	}
	key, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return nil, nil, fmt.Errorf("issue user certificate for %s: %w", accountID, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, fmt.Errorf("issue user certificate for %s: %w", accountID, err)
	}
	subject := pkix.Name{CommonName: name, OrganizationalUnit: []string{accountID}}
	if cn := c.cert.Subject.CommonName; cn != "" {
		subject.Organization = []string{cn}
	}
	notAfter := now.AddDate(UserYears, 0, 0)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-Backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue user certificate for %s: %w", accountID, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), encodeKey(key), nil
}

// Decrypt decrypts ciphertext encrypted for the CA's certificate with RSA
// PKCS#1 v1.5 padding, as the bundle tools encrypt an image's AES key and
// IV (openssl rsautl -encrypt). Whether it fails tells an attacker who can
// submit ciphertexts something about the key (Bleichenbacher's attack):
// for data anyone can submit, use DecryptSessionKey.
func (c *CA) Decrypt(ciphertext []byte) ([]byte, error) {
	if len(ciphertext) != c.key.Size() {
		return nil, fmt.Errorf("decrypt with %s key: %d bytes of ciphertext, want %d: %w", c.cert.Subject.CommonName, len(ciphertext), c.key.Size(), ErrDecrypt)
	}
	// PKCS#1 v1.5 encryption is deprecated, and the bundle format needs it.
	plain, err := rsa.DecryptPKCS1v15(nil, c.key, ciphertext)
	if err != nil {
		return nil, fmt.Errorf("decrypt with %s key: %w", c.cert.Subject.CommonName, ErrDecrypt)
	}
	return plain, nil
}

// DecryptSessionKey is Decrypt for a secret of known length, without the
// padding oracle: if the padding is valid and the plaintext is as long as
// fallback it returns the plaintext, otherwise a copy of fallback, in
// constant time and without an error. Callers pass a fresh random value of
// the shape they expect (for a bundle's AES key, 32 random hex digits), so
// that what follows fails the same way whether or not the padding was
// good. It fails only for a ciphertext that is not as long as the key's
// modulus, or a fallback that is empty or too long for the key.
func (c *CA) DecryptSessionKey(ciphertext, fallback []byte) ([]byte, error) {
	if len(fallback) == 0 {
		return nil, fmt.Errorf("decrypt with %s key: empty fallback: %w", c.cert.Subject.CommonName, ErrInvalid)
	}
	out := bytes.Clone(fallback)
	if len(ciphertext) != c.key.Size() {
		return nil, fmt.Errorf("decrypt with %s key: %d bytes of ciphertext, want %d: %w", c.cert.Subject.CommonName, len(ciphertext), c.key.Size(), ErrDecrypt)
	}
	if err := rsa.DecryptPKCS1v15SessionKey(nil, c.key, ciphertext, out); err != nil {
		return nil, fmt.Errorf("decrypt with %s key: %w", c.cert.Subject.CommonName, ErrDecrypt)
	}
	return out, nil
}

func encodeKey(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

func parseCert(b []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("no CERTIFICATE pem block: %w", ErrCert)
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCert, err)
		}
		if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("%w: %T key, not rsa", ErrCert, cert.PublicKey)
		}
		return cert, nil
	}
}

func parseKey(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("no pem block: %w", ErrKey)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: encrypted or with pem headers", ErrKey)
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKey, err)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKey, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: %T, not rsa", ErrKey, k)
		}
		return rk, nil
	default:
		return nil, fmt.Errorf("%w: pem type %q", ErrKey, block.Type)
	}
}

// checkName checks a name for a certificate's common name: 1 to 64
// printable characters (64 is X.520's upper bound for a common name).
func checkName(name string) error {
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > 64 {
		return fmt.Errorf("name %q: 1 to 64 characters of UTF-8: %w", name, ErrInvalid)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("name %q: control character: %w", name, ErrInvalid)
		}
	}
	return nil
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// serialNumber is a random positive serial of up to 127 bits.
func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil
}
