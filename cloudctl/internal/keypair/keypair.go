package keypair

import (
	"bytes"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Type is a key pair type, as in EC2's KeyType.
type Type string

// The key types EC2 knows.
const (
	RSA     Type = "rsa"
	Ed25519 Type = "ed25519"
)

// Errors callers test for.
var (
	// ErrFormat is for public key material Import does not accept; the
	// API edge answers InvalidKey.Format, "Key is not in valid OpenSSH
	// public key format".
	ErrFormat = errors.New("key is not in valid OpenSSH public key format")
	// ErrType is for a key type Generate does not make.
	ErrType = errors.New("unsupported key type")
)

// GenerateRSABits is the size of the RSA keys Generate makes, as
// CreateKeyPair does.
const GenerateRSABits = 2048

// The RSA key sizes Import accepts. EC2 documents 1024, 2048 and 4096;
// sizes in between, such as ssh-keygen's default 3072, are taken too.
const (
	MinRSABits = 1024
	MaxRSABits = 4096
)

// MaxMaterial is the most public key material Import reads, in bytes; a
// 4096-bit key in the longest accepted form is under 1 KiB.
const MaxMaterial = 16 << 10

// Key is a key pair as EC2 describes it.
type Key struct {
	Type Type
	// PrivatePEM is the private key as CreateKeyPair returns it for
	// KeyFormat=pem; empty for an imported key.
	PrivatePEM []byte
	// PublicOpenSSH is the public key in authorized_keys form, "ssh-rsa
	// AAAA..." or "ssh-ed25519 AAAA...", without a comment.
	PublicOpenSSH string
	// Fingerprint is the fingerprint EC2 reports for the key.
	Fingerprint string
}

// Generate makes a key pair as CreateKeyPair does: an RSA key of
// GenerateRSABits bits or an ED25519 key, with the private key in the
// form EC2 returns for KeyFormat=pem and EC2's fingerprint for a key it
// created.
func Generate(t Type) (Key, error) {
	switch t {
	case RSA:
		priv, err := rsa.GenerateKey(rand.Reader, GenerateRSABits)
		if err != nil {
			return Key{}, fmt.Errorf("generate rsa key: %w", err)
		}
		fp, err := createdRSAFingerprint(priv)
		if err != nil {
			return Key{}, fmt.Errorf("generate rsa key: %w", err)
		}
		return Key{
			Type:          RSA,
			PrivatePEM:    pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}),
			PublicOpenSSH: authorizedKey(nameRSA, rsaBlob(&priv.PublicKey)),
			Fingerprint:   fp,
		}, nil
	case Ed25519:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return Key{}, fmt.Errorf("generate ed25519 key: %w", err)
		}
		privPEM, err := opensshPrivate(priv, "")
		if err != nil {
			return Key{}, fmt.Errorf("generate ed25519 key: %w", err)
		}
		blob := ed25519Blob(pub)
		return Key{
			Type:          Ed25519,
			PrivatePEM:    privPEM,
			PublicOpenSSH: authorizedKey(nameEd25519, blob),
			Fingerprint:   ed25519Fingerprint(blob),
		}, nil
	default:
		return Key{}, fmt.Errorf("generate %s: %w", quote(string(t)), ErrType)
	}
}

// Import reads public key material as ImportKeyPair takes it and returns
// the key in OpenSSH form with the fingerprint EC2 reports for an imported
// key. The material is the key itself: the Query API carries it base64
// encoded in PublicKeyMaterial, and the API edge decodes that first.
//
// Accepted: one line of OpenSSH public key format ("ssh-rsa AAAA...
// comment", "ssh-ed25519 AAAA... comment"); for RSA also an RFC 4716 SSH2
// public key file, base64 DER (SubjectPublicKeyInfo or PKCS#1), and the
// same DER in PEM ("PUBLIC KEY", "RSA PUBLIC KEY"). The comment is
// dropped. Anything else fails with an error wrapping ErrFormat.
func Import(material []byte) (Key, error) {
	pub, err := parse(material)
	if err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if bits := pub.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
			return Key{}, fmt.Errorf("%w: rsa key of %d bits (%d to %d accepted)", ErrFormat, bits, MinRSABits, MaxRSABits)
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return Key{}, fmt.Errorf("%w: rsa public exponent %d", ErrFormat, pub.E)
		}
		fp, err := importedRSAFingerprint(pub)
		if err != nil {
			return Key{}, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		return Key{Type: RSA, PublicOpenSSH: authorizedKey(nameRSA, rsaBlob(pub)), Fingerprint: fp}, nil
	case ed25519.PublicKey:
		blob := ed25519Blob(pub)
		return Key{Type: Ed25519, PublicOpenSSH: authorizedKey(nameEd25519, blob), Fingerprint: ed25519Fingerprint(blob)}, nil
	default:
		return Key{}, fmt.Errorf("%w: unsupported key type %T", ErrFormat, pub)
	}
}

// parse reads material in any accepted form and returns an
// *rsa.PublicKey or an ed25519.PublicKey.
func parse(material []byte) (any, error) {
	if len(material) > MaxMaterial {
		return nil, fmt.Errorf("key material longer than %d bytes", MaxMaterial)
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(material), "\r\n", "\n"))
	switch {
	case s == "":
		return nil, errors.New("empty key material")
	case strings.HasPrefix(s, "---- BEGIN SSH2 PUBLIC KEY ----"):
		return parseRFC4716(s)
	case strings.HasPrefix(s, "-----BEGIN "):
		return parsePEM([]byte(s))
	}
	if line, _, _ := strings.Cut(s, "\n"); len(strings.Fields(line)) > 1 {
		return parseOpenSSH(s)
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil, errors.New("neither openssh public key format nor base64 der")
	}
	return parseDER(der)
}

// parseOpenSSH reads one authorized_keys line without options: type,
// base64 blob, optional comment.
func parseOpenSSH(s string) (any, error) {
	if strings.Contains(s, "\n") {
		return nil, errors.New("more than one line")
	}
	f := strings.Fields(s)
	name := f[0]
	if name != nameRSA && name != nameEd25519 {
		return nil, unsupported(name)
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return nil, errors.New("invalid base64 key data")
	}
	got, _, err := readString(blob)
	if err != nil {
		return nil, err
	}
	if string(got) != name {
		return nil, errors.New("key data does not match key type " + name)
	}
	return parseBlob(blob)
}

// parseRFC4716 reads an SSH2 public key file (RFC 4716): begin line,
// headers (with '\' continuation lines), base64 body, end line. EC2 takes
// this form for RSA keys only.
func parseRFC4716(s string) (any, error) {
	lines := strings.Split(s, "\n")
	if len(lines) < 3 || strings.TrimSpace(lines[len(lines)-1]) != "---- END SSH2 PUBLIC KEY ----" {
		return nil, errors.New("rfc 4716 key without end line")
	}
	lines = lines[1 : len(lines)-1]
	inHeader, cont := true, false
	var body strings.Builder
	for _, l := range lines {
		l = strings.TrimRight(l, " \t")
		switch {
		case cont:
			cont = strings.HasSuffix(l, `\`)
		case inHeader && strings.Contains(l, ":"):
			cont = strings.HasSuffix(l, `\`)
		default:
			inHeader = false
			body.WriteString(strings.TrimSpace(l))
		}
	}
	if cont {
		return nil, errors.New("rfc 4716 header continues past the end")
	}
	blob, err := base64.StdEncoding.DecodeString(body.String())
	if err != nil {
		return nil, errors.New("invalid base64 in rfc 4716 key")
	}
	k, err := parseBlob(blob)
	if err != nil {
		return nil, err
	}
	if _, ok := k.(*rsa.PublicKey); !ok {
		return nil, errors.New("rfc 4716 form is accepted for rsa keys only")
	}
	return k, nil
}

// parsePEM reads one PEM block holding an RSA public key.
func parsePEM(b []byte) (any, error) {
	block, rest := pem.Decode(b)
	switch {
	case block == nil:
		return nil, errors.New("invalid pem")
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, errors.New("data after pem block")
	case len(block.Headers) != 0:
		return nil, errors.New("pem headers not accepted")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return parseDER(block.Bytes)
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, errors.New("invalid pkcs#1 rsa public key")
		}
		return k, nil
	}
	if strings.Contains(block.Type, "PRIVATE") {
		return nil, errors.New("a private key, not a public key")
	}
	return nil, errors.New("unsupported pem type " + quote(block.Type))
}

// parseDER reads a DER RSA public key: SubjectPublicKeyInfo or PKCS#1.
func parseDER(der []byte) (any, error) {
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		if rk, ok := k.(*rsa.PublicKey); ok {
			return rk, nil
		}
		return nil, fmt.Errorf("der form is accepted for rsa keys only, not %T", k)
	}
	if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("invalid der public key")
}

// createdRSAFingerprint is EC2's fingerprint for an RSA key it created:
// SHA-1 of the DER PKCS#8 private key, colon-separated hex.
func createdRSAFingerprint(priv *rsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	sum := sha1.Sum(der)
	return colonHex(sum[:]), nil
}

// importedRSAFingerprint is EC2's fingerprint for an imported RSA key: MD5
// of the DER SubjectPublicKeyInfo, colon-separated hex. The API reference
// calls it "the MD5 public key fingerprint as specified in section 4 of
// RFC4716", which would hash the SSH blob (ssh-keygen -E md5 -l); the
// user guide's openssl command, and what EC2 shows, hash the DER.
func importedRSAFingerprint(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := md5.Sum(der)
	return colonHex(sum[:]), nil
}

// ed25519Fingerprint is EC2's fingerprint for an ED25519 key, created or
// imported: SHA-256 of the SSH public key blob, padded base64.
func ed25519Fingerprint(blob []byte) string {
	sum := sha256.Sum256(blob)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func colonHex(b []byte) string {
	h := hex.EncodeToString(b)
	var s strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			s.WriteByte(':')
		}
		s.WriteString(h[i : i+2])
	}
	return s.String()
}
