package keypair

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The vectors in testdata were made by gen.sh with ssh-keygen and openssl,
// using the commands AWS documents for checking EC2's fingerprints.

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fileLine(t *testing.T, name string) string {
	t.Helper()
	return strings.TrimSpace(string(readTestdata(t, name)))
}

// openssh returns the "type base64" part of an authorized_keys line.
func openssh(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return line
	}
	return f[0] + " " + f[1]
}

func TestCreatedRSAFingerprintVector(t *testing.T) {
	block, _ := pem.Decode(readTestdata(t, "rsa2048.pem"))
	if block == nil || block.Type != "RSA PRIVATE KEY" {
		t.Fatal("rsa2048.pem: no RSA PRIVATE KEY block")
	}
	priv, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	got, err := createdRSAFingerprint(priv)
	if err != nil {
		t.Fatal(err)
	}
	if want := fileLine(t, "rsa2048.sha1"); got != want {
		t.Errorf("fingerprint = %s, openssl pkcs8 | openssl sha1 -c says %s", got, want)
	}
}

func TestImportVectors(t *testing.T) {
	ed25519FP := fileLine(t, "ed25519.sha256") + "=" // ssh-keygen drops the padding EC2 shows
	tests := []struct {
		file     string
		typ      Type
		wantFP   string
		wantLine string
	}{
		{"rsa1024.pub", RSA, fileLine(t, "rsa1024.md5"), fileLine(t, "rsa1024.pub")},
		{"rsa2048.pub", RSA, fileLine(t, "rsa2048.md5"), fileLine(t, "rsa2048.pub")},
		{"rsa2048.rfc4716", RSA, fileLine(t, "rsa2048.md5"), fileLine(t, "rsa2048.pub")},
		{"rsa2048.spki.pem", RSA, fileLine(t, "rsa2048.md5"), fileLine(t, "rsa2048.pub")},
		{"rsa2048.pkcs1.pem", RSA, fileLine(t, "rsa2048.md5"), fileLine(t, "rsa2048.pub")},
		{"rsa2048.der.b64", RSA, fileLine(t, "rsa2048.md5"), fileLine(t, "rsa2048.pub")},
		{"rsa3072.pub", RSA, fileLine(t, "rsa3072.md5"), fileLine(t, "rsa3072.pub")},
		{"rsa4096.pub", RSA, fileLine(t, "rsa4096.md5"), fileLine(t, "rsa4096.pub")},
		{"ed25519.pub", Ed25519, ed25519FP, fileLine(t, "ed25519.pub")},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			k, err := Import(readTestdata(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if k.Type != tc.typ {
				t.Errorf("type = %q, want %q", k.Type, tc.typ)
			}
			if k.Fingerprint != tc.wantFP {
				t.Errorf("fingerprint = %s, want %s", k.Fingerprint, tc.wantFP)
			}
			if want := openssh(tc.wantLine); k.PublicOpenSSH != want {
				t.Errorf("public key = %s, want %s", k.PublicOpenSSH, want)
			}
			if k.PrivatePEM != nil {
				t.Error("imported key has a private key")
			}
		})
	}
}

// TestImportLayouts feeds the same keys in the layouts people paste.
func TestImportLayouts(t *testing.T) {
	rsaLine := fileLine(t, "rsa2048.pub")
	rsaFP := fileLine(t, "rsa2048.md5")
	edLine := fileLine(t, "ed25519.pub")
	rfc := fileLine(t, "rsa2048.rfc4716")
	body := rfc[strings.Index(rfc, "AAAA"):strings.Index(rfc, "---- END")]
	der := fileLine(t, "rsa2048.der.b64")
	tests := []struct {
		name, material, wantFP string
	}{
		{"no comment", openssh(rsaLine), rsaFP},
		{"comment with spaces", openssh(rsaLine) + " my laptop key", rsaFP},
		{"trailing newline", rsaLine + "\n", rsaFP},
		{"crlf", rsaLine + "\r\n", rsaFP},
		{"leading blank line", "\n\n" + rsaLine, rsaFP},
		{"tab separated", strings.Replace(openssh(rsaLine), " ", "\t", 1), rsaFP},
		{"ed25519 no comment", openssh(edLine), fileLine(t, "ed25519.sha256") + "="},
		{"rfc4716 no headers", "---- BEGIN SSH2 PUBLIC KEY ----\n" + body + "---- END SSH2 PUBLIC KEY ----\n", rsaFP},
		{"rfc4716 continued header", "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"a long \\\ncomment\"\nx-private: yes\n" + body + "---- END SSH2 PUBLIC KEY ----", rsaFP},
		{"rfc4716 crlf", strings.ReplaceAll(rfc, "\n", "\r\n"), rsaFP},
		{"der one line", strings.ReplaceAll(der, "\n", ""), rsaFP},
		{"der pkcs1", base64.StdEncoding.EncodeToString(pemBytes(t, "rsa2048.pkcs1.pem")), rsaFP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := Import([]byte(tc.material))
			if err != nil {
				t.Fatal(err)
			}
			if k.Fingerprint != tc.wantFP {
				t.Errorf("fingerprint = %s, want %s", k.Fingerprint, tc.wantFP)
			}
		})
	}
}

func pemBytes(t *testing.T, name string) []byte {
	t.Helper()
	block, _ := pem.Decode(readTestdata(t, name))
	if block == nil {
		t.Fatalf("%s: no pem block", name)
	}
	return block.Bytes
}

// fakeRSA is an RSA public key of the given modulus size; it need not be
// a real key to exercise the size checks.
func fakeRSA(bits, e int) *rsa.PublicKey {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	return &rsa.PublicKey{N: n.Or(n, big.NewInt(1)), E: e}
}

func line(name string, blob []byte) string {
	return name + " " + base64.StdEncoding.EncodeToString(blob) + " test"
}

func TestImportRejects(t *testing.T) {
	rsaLine := fileLine(t, "rsa2048.pub")
	rsaB64 := strings.Fields(rsaLine)[1]
	rsaBlob, _ := base64.StdEncoding.DecodeString(rsaB64)
	edBlob, _ := base64.StdEncoding.DecodeString(strings.Fields(fileLine(t, "ed25519.pub"))[1])
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edDER, err := x509.MarshalPKIXPublicKey(edPub)
	if err != nil {
		t.Fatal(err)
	}
	smallDER, err := x509.MarshalPKIXPublicKey(fakeRSA(768, 65537))
	if err != nil {
		t.Fatal(err)
	}
	pemArmor := func(typ string, der []byte, h map[string]string) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Headers: h, Bytes: der}))
	}
	skBlob := appendString(appendString(appendString(nil, []byte("sk-ssh-ed25519@openssh.com")), edPub), []byte("ssh:"))

	tests := []struct {
		name     string
		material string
	}{
		{"empty", ""},
		{"blank", " \n\t\n"},
		{"garbage", "hello world"},
		{"garbage one word", "!!!notbase64!!!"},
		{"base64 of nothing useful", base64.StdEncoding.EncodeToString([]byte("not a key at all"))},
		{"type only", "ssh-rsa"},
		{"truncated base64", "ssh-rsa " + rsaB64[:len(rsaB64)-3]},
		{"truncated base64 on a quad", "ssh-rsa " + rsaB64[:200]},
		{"truncated blob", line("ssh-rsa", rsaBlob[:len(rsaBlob)-1])},
		{"trailing data in blob", line("ssh-rsa", append(append([]byte(nil), rsaBlob...), 0))},
		{"type mismatch", line("ssh-ed25519", rsaBlob)},
		{"type mismatch ed25519 as rsa", line("ssh-rsa", edBlob)},
		{"dsa", fileLine(t, "dsa.pub")},
		{"ecdsa", fileLine(t, "ecdsa256.pub")},
		{"ecdsa spki pem", fileLine(t, "ecdsa256.spki.pem")},
		{"ed25519 spki der", base64.StdEncoding.EncodeToString(edDER)},
		{"ed25519 spki pem", pemArmor("PUBLIC KEY", edDER, nil)},
		{"ed25519 rfc4716", fileLine(t, "ed25519.rfc4716")},
		{"security key", line("sk-ssh-ed25519@openssh.com", skBlob)},
		{"certificate", line("ssh-rsa-cert-v01@openssh.com", rsaBlob)},
		{"two keys", rsaLine + "\n" + fileLine(t, "ed25519.pub")},
		{"authorized_keys options", "no-pty " + rsaLine},
		{"rsa private key", string(readTestdata(t, "rsa2048.pem"))},
		{"openssh private key", string(readTestdata(t, "ed25519.openssh"))},
		{"rsa 768 bits", line("ssh-rsa", rsaBlobOf(fakeRSA(768, 65537)))},
		{"rsa 1023 bits", line("ssh-rsa", rsaBlobOf(fakeRSA(1023, 65537)))},
		{"rsa 4097 bits", line("ssh-rsa", rsaBlobOf(fakeRSA(4097, 65537)))},
		{"rsa 8192 bits", line("ssh-rsa", rsaBlobOf(fakeRSA(8192, 65537)))},
		{"rsa 768 bits der", base64.StdEncoding.EncodeToString(smallDER)},
		{"rsa even exponent", line("ssh-rsa", rsaBlobOf(fakeRSA(2048, 65536)))},
		{"rsa exponent 1", line("ssh-rsa", rsaBlobOf(fakeRSA(2048, 1)))},
		{"rsa negative modulus", line("ssh-rsa", appendString(appendMPInt(appendString(nil, []byte("ssh-rsa")), big.NewInt(65537)), []byte{0x80, 1}))},
		{"rsa huge exponent", line("ssh-rsa", appendMPInt(appendMPInt(appendString(nil, []byte("ssh-rsa")), new(big.Int).Lsh(big.NewInt(1), 40)), fakeRSA(2048, 3).N))},
		{"ed25519 short key", line("ssh-ed25519", appendString(appendString(nil, []byte("ssh-ed25519")), edPub[:31]))},
		{"pem trailing garbage", fileLine(t, "rsa2048.spki.pem") + "\nextra"},
		{"pem with headers", pemArmor("PUBLIC KEY", pemBytes(t, "rsa2048.spki.pem"), map[string]string{"Proc-Type": "4,ENCRYPTED"})},
		{"pem certificate", pemArmor("CERTIFICATE", pemBytes(t, "rsa2048.spki.pem"), nil)},
		{"pem bad der", pemArmor("PUBLIC KEY", []byte("junk"), nil)},
		{"pkcs1 pem bad der", pemArmor("RSA PUBLIC KEY", []byte("junk"), nil)},
		{"pem unterminated", "-----BEGIN PUBLIC KEY-----\n" + rsaB64[:64]},
		{"rfc4716 no end", "---- BEGIN SSH2 PUBLIC KEY ----\n" + rsaB64},
		{"rfc4716 bad base64", "---- BEGIN SSH2 PUBLIC KEY ----\n" + rsaB64[:101] + "\n---- END SSH2 PUBLIC KEY ----"},
		{"rfc4716 header runs off", "---- BEGIN SSH2 PUBLIC KEY ----\nComment: x\\\n---- END SSH2 PUBLIC KEY ----"},
		{"too long", rsaLine + " " + strings.Repeat("x", MaxMaterial)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := Import([]byte(tc.material))
			if err == nil {
				t.Fatalf("accepted: %+v", k)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v does not wrap ErrFormat", err)
			}
		})
	}
}

func rsaBlobOf(pub *rsa.PublicKey) []byte { return rsaBlob(pub) }

func TestGenerate(t *testing.T) {
	tests := []struct {
		typ       Type
		pemType   string
		keyPrefix string
	}{
		{RSA, "RSA PRIVATE KEY", "ssh-rsa AAAA"},
		{Ed25519, "OPENSSH PRIVATE KEY", "ssh-ed25519 AAAA"},
	}
	for _, tc := range tests {
		t.Run(string(tc.typ), func(t *testing.T) {
			k, err := Generate(tc.typ)
			if err != nil {
				t.Fatal(err)
			}
			if k.Type != tc.typ {
				t.Errorf("type = %q", k.Type)
			}
			block, rest := pem.Decode(k.PrivatePEM)
			if block == nil || block.Type != tc.pemType || len(rest) != 0 {
				t.Fatalf("private key is not one %s block:\n%s", tc.pemType, k.PrivatePEM)
			}
			if !strings.HasPrefix(k.PublicOpenSSH, tc.keyPrefix) || strings.Count(k.PublicOpenSSH, " ") != 1 {
				t.Errorf("public key = %q", k.PublicOpenSSH)
			}
			imported, err := Import([]byte(k.PublicOpenSSH))
			if err != nil {
				t.Fatalf("Import of the generated public key: %v", err)
			}
			if imported.PublicOpenSSH != k.PublicOpenSSH {
				t.Errorf("Import gave %s, want %s", imported.PublicOpenSSH, k.PublicOpenSSH)
			}

			switch tc.typ {
			case RSA:
				priv, err := x509.ParsePKCS1PrivateKey(block.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				if bits := priv.N.BitLen(); bits != GenerateRSABits {
					t.Errorf("rsa key of %d bits", bits)
				}
				if want, _ := createdRSAFingerprint(priv); k.Fingerprint != want {
					t.Errorf("fingerprint = %s, want %s", k.Fingerprint, want)
				}
				if len(k.Fingerprint) != 59 { // 20 bytes, colon-separated
					t.Errorf("fingerprint %q is not a colon-separated SHA-1", k.Fingerprint)
				}
				// EC2 fingerprints an RSA key differently once imported.
				if imported.Fingerprint == k.Fingerprint || len(imported.Fingerprint) != 47 {
					t.Errorf("imported fingerprint %q, created %q", imported.Fingerprint, k.Fingerprint)
				}
			case Ed25519:
				checkOpenSSHPrivate(t, block.Bytes, k.PublicOpenSSH)
				if imported.Fingerprint != k.Fingerprint {
					t.Errorf("imported fingerprint %s, created %s: EC2 uses the same for ed25519", imported.Fingerprint, k.Fingerprint)
				}
				if len(k.Fingerprint) != 44 || !strings.HasSuffix(k.Fingerprint, "=") {
					t.Errorf("fingerprint %q is not padded base64 of SHA-256", k.Fingerprint)
				}
			}
		})
	}
}

// checkOpenSSHPrivate reads an unencrypted OpenSSH ed25519 private key and
// checks it holds a working key for pub.
func checkOpenSSHPrivate(t *testing.T, b []byte, pub string) {
	t.Helper()
	const magic = "openssh-key-v1\x00"
	if !bytes.HasPrefix(b, []byte(magic)) {
		t.Fatal("no openssh-key-v1 magic")
	}
	b = b[len(magic):]
	var fields [][]byte
	for range 3 { // cipher, kdf, kdf options
		var f []byte
		var err error
		if f, b, err = readString(b); err != nil {
			t.Fatal(err)
		}
		fields = append(fields, f)
	}
	if string(fields[0]) != "none" || string(fields[1]) != "none" || len(fields[2]) != 0 {
		t.Fatalf("cipher/kdf = %q", fields)
	}
	if len(b) < 4 || b[3] != 1 {
		t.Fatal("not one key")
	}
	blob, b, err := readString(b[4:])
	if err != nil {
		t.Fatal(err)
	}
	if got := authorizedKey(nameEd25519, blob); got != pub {
		t.Errorf("public blob %s, want %s", got, pub)
	}
	sec, b, err := readString(b)
	if err != nil || len(b) != 0 || len(sec)%8 != 0 {
		t.Fatalf("private section: err %v, %d trailing, %d long", err, len(b), len(sec))
	}
	if !bytes.Equal(sec[:4], sec[4:8]) {
		t.Error("check integers differ")
	}
	name, sec, _ := readString(sec[8:])
	pk, sec, _ := readString(sec)
	sk, _, _ := readString(sec)
	if string(name) != nameEd25519 || len(pk) != ed25519.PublicKeySize || len(sk) != ed25519.PrivateKeySize {
		t.Fatalf("private key fields: %q, %d, %d", name, len(pk), len(sk))
	}
	msg := []byte("koala")
	if !ed25519.Verify(pk, msg, ed25519.Sign(ed25519.PrivateKey(sk), msg)) {
		t.Error("private key does not sign for its public key")
	}
}

func TestGenerateUnknownType(t *testing.T) {
	for _, typ := range []Type{"", "dsa", "ecdsa", "RSA"} {
		t.Run(string(typ), func(t *testing.T) {
			if _, err := Generate(typ); !errors.Is(err, ErrType) {
				t.Errorf("err = %v, want ErrType", err)
			}
		})
	}
}

func TestColonHex(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{nil, ""},
		{[]byte{0x0a}, "0a"},
		{[]byte{0xde, 0xad, 0xbe, 0xef}, "de:ad:be:ef"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := colonHex(tc.in); got != tc.want {
				t.Errorf("colonHex(%x) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
