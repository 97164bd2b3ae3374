package keypair

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// These tests check Generate and Import against fingerprints computed by
// openssl and ssh-keygen with the commands in AWS's "Verify the fingerprint
// of your key pair". They skip when the tools are missing, except in CI.

func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required in CI: %v", n, err)
			}
			t.Skipf("%s not installed: %v", n, err)
		}
	}
}

func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// digest reads openssl's "MD5(stdin)= 12:34:..." line.
func digest(t *testing.T, out []byte) string {
	t.Helper()
	_, d, ok := strings.Cut(strings.TrimSpace(string(out)), "= ")
	if !ok {
		t.Fatalf("unexpected openssl output %q", out)
	}
	return d
}

// awsCreatedRSA: openssl pkcs8 -in KEY -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c
func awsCreatedRSA(t *testing.T, key string) string {
	der := run(t, nil, "openssl", "pkcs8", "-in", key, "-inform", "PEM", "-outform", "DER", "-topk8", "-nocrypt")
	return digest(t, run(t, der, "openssl", "sha1", "-c"))
}

// awsImportedRSA: openssl rsa -in KEY -pubout -outform DER | openssl md5 -c
func awsImportedRSA(t *testing.T, key string) string {
	der := run(t, nil, "openssl", "rsa", "-in", key, "-pubout", "-outform", "DER")
	return digest(t, run(t, der, "openssl", "md5", "-c"))
}

// awsImportedRSA78 is AWS's command for an RSA key in OpenSSH's own private
// key format (OpenSSH 7.8 and later):
// ssh-keygen -ef KEY -m PEM | openssl rsa -RSAPublicKey_in -outform DER | openssl md5 -c
func awsImportedRSA78(t *testing.T, key string) string {
	pkcs1 := run(t, nil, "ssh-keygen", "-ef", key, "-m", "PEM")
	der := run(t, pkcs1, "openssl", "rsa", "-RSAPublicKey_in", "-outform", "DER")
	return digest(t, run(t, der, "openssl", "md5", "-c"))
}

// awsEd25519 is ssh-keygen -l -f KEY, with the '=' padding EC2 shows.
func awsEd25519(t *testing.T, key string) string {
	f := strings.Fields(string(run(t, nil, "ssh-keygen", "-l", "-f", key)))
	if len(f) < 2 || !strings.HasPrefix(f[1], "SHA256:") {
		t.Fatalf("unexpected ssh-keygen -l output %q", f)
	}
	return strings.TrimPrefix(f[1], "SHA256:") + "="
}

func TestGenerateAgainstTools(t *testing.T) {
	needTools(t, "openssl", "ssh-keygen")
	for _, typ := range []Type{RSA, Ed25519} {
		t.Run(string(typ), func(t *testing.T) {
			k, err := Generate(typ)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			key := filepath.Join(dir, "key.pem")
			if err := os.WriteFile(key, k.PrivatePEM, 0o600); err != nil {
				t.Fatal(err)
			}

			var want string
			if typ == RSA {
				want = awsCreatedRSA(t, key)
			} else {
				want = awsEd25519(t, key)
			}
			if k.Fingerprint != want {
				t.Errorf("fingerprint = %s, AWS's command gives %s", k.Fingerprint, want)
			}

			// ssh-keygen reads the private key and derives the same public key.
			if got := openssh(string(run(t, nil, "ssh-keygen", "-y", "-f", key))); got != k.PublicOpenSSH {
				t.Errorf("ssh-keygen -y = %s, want %s", got, k.PublicOpenSSH)
			}

			// The private key signs, and the signature checks out against the
			// public key. A PEM RSA key does not hold its public key, so
			// ssh-keygen wants it beside the private key.
			if typ == RSA {
				if err := os.WriteFile(key+".pub", []byte(k.PublicOpenSSH+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			data := filepath.Join(dir, "data")
			if err := os.WriteFile(data, []byte("koala"), 0o600); err != nil {
				t.Fatal(err)
			}
			run(t, nil, "ssh-keygen", "-Y", "sign", "-q", "-f", key, "-n", "test", data)
			run(t, []byte("koala"), "ssh-keygen", "-Y", "check-novalidate", "-n", "test", "-s", data+".sig")

			// Imported, an RSA key gets the MD5 fingerprint of its public key.
			imported, err := Import([]byte(k.PublicOpenSSH))
			if err != nil {
				t.Fatal(err)
			}
			if typ == RSA {
				want = awsImportedRSA(t, key)
			}
			if imported.Fingerprint != want {
				t.Errorf("imported fingerprint = %s, AWS's command gives %s", imported.Fingerprint, want)
			}
		})
	}
}

func TestImportAgainstTools(t *testing.T) {
	needTools(t, "openssl", "ssh-keygen")
	tests := []struct {
		name string
		args []string // to ssh-keygen
		big  bool
	}{
		{"rsa1024 pem", []string{"-t", "rsa", "-b", "1024", "-m", "PEM"}, false},
		{"rsa2048 pem", []string{"-t", "rsa", "-b", "2048", "-m", "PEM"}, false},
		{"rsa3072 openssh", []string{"-t", "rsa", "-b", "3072"}, false},
		{"rsa4096 pem", []string{"-t", "rsa", "-b", "4096", "-m", "PEM"}, true},
		{"ed25519", []string{"-t", "ed25519"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.big && testing.Short() {
				t.Skip("slow key generation in -short mode")
			}
			key := filepath.Join(t.TempDir(), "id")
			run(t, nil, "ssh-keygen", append(tc.args, "-q", "-N", "", "-C", "koala test", "-f", key)...)
			pubLine, err := os.ReadFile(key + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			wantPub := openssh(string(pubLine))

			forms := map[string][]byte{"openssh": pubLine}
			var want string
			switch {
			case strings.HasPrefix(tc.name, "ed25519"):
				want = awsEd25519(t, key)
			default:
				if strings.HasSuffix(tc.name, " pem") {
					want = awsImportedRSA(t, key)
				} else {
					want = awsImportedRSA78(t, key)
				}
				spki := run(t, nil, "ssh-keygen", "-e", "-m", "PKCS8", "-f", key+".pub")
				forms["rfc4716"] = run(t, nil, "ssh-keygen", "-e", "-m", "RFC4716", "-f", key+".pub")
				forms["spki pem"] = spki
				forms["pkcs1 pem"] = run(t, nil, "ssh-keygen", "-e", "-m", "PEM", "-f", key+".pub")
				der := run(t, spki, "openssl", "pkey", "-pubin", "-outform", "DER")
				forms["base64 der"] = []byte(base64.StdEncoding.EncodeToString(der))
			}
			for form, material := range forms {
				t.Run(form, func(t *testing.T) {
					k, err := Import(material)
					if err != nil {
						t.Fatal(err)
					}
					if k.Fingerprint != want {
						t.Errorf("fingerprint = %s, AWS's command gives %s", k.Fingerprint, want)
					}
					if k.PublicOpenSSH != wantPub {
						t.Errorf("public key = %s, want %s", k.PublicOpenSSH, wantPub)
					}
				})
			}
		})
	}
}
