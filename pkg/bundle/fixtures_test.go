package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
	"testing"
)

// TestFixtures reads the bundles made by euca2ools 3.4 and ec2-ami-tools
// 1.5.7: parse, verify, decrypt the keys both ways, and unbundle.
func TestFixtures(t *testing.T) {
	k := loadKeys(t)
	want := fixtureSHA256(t)
	for _, f := range fixtures {
		t.Run(f.dir, func(t *testing.T) {
			m, err := ParseManifest(f.manifest(t))
			if err != nil {
				t.Fatal(err)
			}
			if m.Bundler.Name != f.bundler || m.Name != "disk.img" || m.User != "123456789012" ||
				m.Type != TypeMachine || m.Arch != "x86_64" || m.Size != 25165824 ||
				m.KernelID != "" || m.RamdiskID != "" || m.DigestAlgorithm != "SHA1" {
				t.Errorf("fields: %+v", m)
			}
			var bundled int64
			for i, p := range m.Parts {
				if p.Index != i || p.Filename != f.parts[i] {
					t.Errorf("part %d: %+v, want %s", i, p, f.parts[i])
				}
				bundled += int64(len(readFile(t, f.path(p.Filename))))
			}
			if len(m.Parts) != len(f.parts) {
				t.Errorf("%d parts, want %d", len(m.Parts), len(f.parts))
			}
			if m.BundledSize != bundled {
				t.Errorf("bundled_size %d, parts hold %d bytes", m.BundledSize, bundled)
			}
			if err := m.Verify(k.userCert); err != nil {
				t.Fatalf("verify: %v", err)
			}

			key, iv, err := m.Keys(Decrypter(k.cloudKey))
			if err != nil {
				t.Fatal(err)
			}
			key2, iv2, err := m.Keys(plainDecrypter(k.cloudKey))
			if err != nil {
				t.Fatal(err)
			}
			ukey, uiv, err := m.UserKeys(plainDecrypter(k.userKey))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(key, key2) || !bytes.Equal(key, ukey) || !bytes.Equal(iv, iv2) || !bytes.Equal(iv, uiv) {
				t.Fatalf("keys differ: %x/%x %x/%x %x/%x", key, iv, key2, iv2, ukey, uiv)
			}

			rc, err := Open(context.Background(), m, key, iv, Dir(filepath.Join(fixtureDir, f.dir)))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			h := sha256.New()
			var marker bytes.Buffer
			n, err := io.Copy(io.MultiWriter(h, &grep{pattern: []byte("fixture-marker-5254e42b"), found: &marker}), rc)
			if err != nil {
				t.Fatalf("read image: %v", err)
			}
			if n != m.Size {
				t.Errorf("read %d bytes, want %d", n, m.Size)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != want {
				t.Errorf("sha256 %s, want %s", got, want)
			}
			if marker.Len() == 0 {
				t.Error("the image does not hold the marker text")
			}
		})
	}
}

// grep notes whether pattern occurs in what is written (within one write).
type grep struct {
	pattern []byte
	found   *bytes.Buffer
}

func (g *grep) Write(p []byte) (int, error) {
	if g.found.Len() == 0 && bytes.Contains(p, g.pattern) {
		g.found.Write(g.pattern)
	}
	return len(p), nil
}

// TestEncodeMatchesFixtures re-serialises each parsed fixture manifest in
// its tool's style with its own signature: the bytes must be the file's.
// This pins the layout Create writes to what the tools write.
func TestEncodeMatchesFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.dir, func(t *testing.T) {
			doc := f.manifest(t)
			m, err := ParseManifest(doc)
			if err != nil {
				t.Fatal(err)
			}
			signed := m.Signed
			sig := m.Signature
			got, err := encode(m, f.style, func(s []byte) ([]byte, error) {
				if !bytes.Equal(s, signed) {
					t.Errorf("signed text differs:\n got %s\nwant %s", s, signed)
				}
				return sig, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, doc) {
				t.Errorf("re-encoded manifest differs:\n got %s\nwant %s", got, doc)
			}
		})
	}
}

// TestSignedTextAsTools checks that Signed is what ec2-ami-tools signs: the
// text from the first "<machine_configuration>" to the first
// "</machine_configuration>", then likewise for <image>.
func TestSignedTextAsTools(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.dir, func(t *testing.T) {
			doc := f.manifest(t)
			m, err := ParseManifest(doc)
			if err != nil {
				t.Fatal(err)
			}
			if want := toolsSignedText(doc); !bytes.Equal(m.Signed, want) {
				t.Errorf("Signed:\n%s\nwant\n%s", m.Signed, want)
			}
		})
	}
}

// toolsSignedText cuts the signed text the way ec2-ami-tools' XMLUtil does.
func toolsSignedText(doc []byte) []byte {
	cut := func(name string) []byte {
		start := bytes.Index(doc, []byte("<"+name+">"))
		end := bytes.Index(doc, []byte("</"+name+">"))
		if start < 0 || end < 0 {
			return nil
		}
		return doc[start : end+len(name)+3]
	}
	return append(bytes.Clone(cut("machine_configuration")), cut("image")...)
}
