package keypair

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzImport checks that Import never panics, fails only with ErrFormat,
// and that what it accepts it accepts again in its own output form with
// the same result.
func FuzzImport(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, ".sh") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "ssh-rsa", "ssh-rsa AAAA", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
		"---- BEGIN SSH2 PUBLIC KEY ----\n---- END SSH2 PUBLIC KEY ----",
		"-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----", "MIIB",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, material []byte) {
		k, err := Import(material)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		if (k.Type != RSA && k.Type != Ed25519) || k.Fingerprint == "" || k.PrivatePEM != nil {
			t.Fatalf("accepted key %+v", k)
		}
		again, err := Import([]byte(k.PublicOpenSSH))
		if err != nil {
			t.Fatalf("own output %q refused: %v", k.PublicOpenSSH, err)
		}
		if again.Type != k.Type || again.PublicOpenSSH != k.PublicOpenSSH || again.Fingerprint != k.Fingerprint {
			t.Fatalf("re-import gave %+v, want %+v", again, k)
		}
	})
}
