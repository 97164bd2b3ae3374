package bundle

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

// mustFail reads the whole image and checks that reading ends with an error
// wrapping want, not with io.EOF.
func mustFail(t *testing.T, doc []byte, src PartSource, want error) {
	t.Helper()
	data, _, err := openAll(t, doc, src)
	if err == nil {
		t.Fatalf("image of %d bytes read to EOF, want an error wrapping %q", len(data), want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want one wrapping %q", err, want)
	}
	t.Logf("%d bytes, then: %v", len(data), err)
}

func TestTamperedParts(t *testing.T) {
	f := fixtures[1] // three parts
	doc := f.manifest(t)
	clean := f.store(t)
	for i, name := range f.parts {
		size := len(clean.files[name])
		for _, off := range []int{0, 5, 16, size / 2, size - 17, size - 1} {
			t.Run(name+"/flip@"+strconv.Itoa(off), func(t *testing.T) {
				s := clean.clone()
				s.files[name][off] ^= 0x20
				mustFail(t, doc, s, ErrPartDigest)
			})
		}
		t.Run(name+"/truncated", func(t *testing.T) {
			s := clean.clone()
			s.files[name] = s.files[name][:size-16]
			mustFail(t, doc, s, ErrPartDigest)
		})
		t.Run(name+"/extended", func(t *testing.T) {
			s := clean.clone()
			s.files[name] = append(s.files[name], make([]byte, 16)...)
			mustFail(t, doc, s, ErrPartDigest)
		})
		t.Run(name+"/missing", func(t *testing.T) {
			s := clean.clone()
			delete(s.files, name)
			mustFail(t, doc, s, ErrMissingPart)
		})
		if i+1 < len(f.parts) {
			t.Run(name+"/swapped with next", func(t *testing.T) {
				s := clean.clone()
				next := f.parts[i+1]
				s.files[name], s.files[next] = s.files[next], s.files[name]
				mustFail(t, doc, s, ErrPartDigest)
			})
		}
	}
	t.Run("single-part flip", func(t *testing.T) {
		f := fixtures[2]
		s := f.store(t)
		s.files[f.parts[0]][1<<20] ^= 1
		mustFail(t, f.manifest(t), s, ErrPartDigest)
	})
}

// TestTamperedSignedRegion changes every byte of the signed text in turn:
// each change must be refused by ParseManifest or by Verify.
func TestTamperedSignedRegion(t *testing.T) {
	k := loadKeys(t)
	for _, f := range fixtures {
		t.Run(f.dir, func(t *testing.T) {
			doc := f.manifest(t)
			start := bytes.Index(doc, []byte("<machine_configuration>"))
			end := bytes.Index(doc, []byte("</image>")) + len("</image>")
			parsed, verified := 0, 0
			for i := start; i < end; i++ {
				for _, c := range []byte{doc[i] ^ 0x01, doc[i] ^ 0x20} {
					bad := bytes.Clone(doc)
					bad[i] = c
					m, err := ParseManifest(bad)
					if err != nil {
						if !errors.Is(err, ErrMalformedManifest) {
							t.Fatalf("byte %d: parse error %v does not wrap ErrMalformedManifest", i, err)
						}
						continue
					}
					parsed++
					if err := m.Verify(k.userCert); !errors.Is(err, ErrBadSignature) {
						t.Fatalf("byte %d changed to %q: verify = %v", i, c, err)
					}
					verified++
				}
			}
			if verified == 0 {
				t.Fatal("no change got as far as Verify")
			}
			t.Logf("%d changes parsed, all refused by Verify", parsed)
		})
	}
}

func TestTamperedSignature(t *testing.T) {
	k := loadKeys(t)
	f := fixtures[0]
	doc := f.manifest(t)
	sigStart := bytes.Index(doc, []byte("<signature>")) + len("<signature>")
	for _, off := range []int{0, 1, 100, 255, 511} {
		bad := bytes.Clone(doc)
		if bad[sigStart+off] == '0' {
			bad[sigStart+off] = '1'
		} else {
			bad[sigStart+off] = '0'
		}
		m, err := ParseManifest(bad)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Verify(k.userCert); !errors.Is(err, ErrBadSignature) {
			t.Errorf("signature hex digit %d changed: verify = %v", off, err)
		}
	}
	// A truncated signature parses but does not verify.
	bad := bytes.Replace(doc, doc[sigStart:sigStart+2], nil, 1)
	m, err := ParseManifest(bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(k.userCert); !errors.Is(err, ErrBadSignature) {
		t.Errorf("short signature: verify = %v", err)
	}
}

func TestWrongUserCert(t *testing.T) {
	k := loadKeys(t)
	for _, f := range fixtures {
		m, err := ParseManifest(f.manifest(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Verify(k.cloudCert); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: verify with the cloud cert = %v", f.dir, err)
		}
		if err := m.Verify(nil); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: verify with no cert = %v", f.dir, err)
		}
	}
}

// TestSignatureWrapping puts a copy of the genuine signed elements in a
// comment before altered real ones: the signature covers the elements that
// are parsed, not the first matching text.
func TestSignatureWrapping(t *testing.T) {
	k := loadKeys(t)
	doc := fixtures[0].manifest(t)
	signed := toolsSignedText(doc)
	altered := bytes.Replace(doc, []byte("<architecture>x86_64</architecture>"), []byte("<architecture>i386</architecture>"), 1)
	wrapped := bytes.Replace(altered, []byte("<machine_configuration>"), append(append([]byte("<!--"), signed...), []byte("--><machine_configuration>")...), 1)
	m, err := ParseManifest(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if m.Arch != "i386" {
		t.Fatalf("arch %q", m.Arch)
	}
	if err := m.Verify(k.userCert); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("verify = %v, want ErrBadSignature", err)
	}
}

func TestWrongCloudKey(t *testing.T) {
	k := loadKeys(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fixtures {
		t.Run(f.dir, func(t *testing.T) {
			m, err := ParseManifest(f.manifest(t))
			if err != nil {
				t.Fatal(err)
			}
			for name, priv := range map[string]*rsa.PrivateKey{"other key": other, "user key": k.userKey} {
				// A decrypter that reports padding errors fails in Keys.
				if _, _, err := m.Keys(plainDecrypter(priv)); !errors.Is(err, ErrKeyDecrypt) {
					t.Errorf("%s, plain decrypt: Keys = %v", name, err)
				}
				// Decrypter hides the failure until Open.
				key, iv, err := m.Keys(Decrypter(priv))
				if err != nil {
					t.Fatalf("%s: Keys with Decrypter = %v", name, err)
				}
				_, err = Open(context.Background(), m, key, iv, f.store(t))
				if !errors.Is(err, ErrKeyDecrypt) {
					t.Errorf("%s: Open = %v, want ErrKeyDecrypt", name, err)
				}
			}
			// The right key with a wrong IV spoils the first block only,
			// which holds the gzip header.
			key, iv, err := m.Keys(Decrypter(k.cloudKey))
			if err != nil {
				t.Fatal(err)
			}
			iv[0] ^= 0xff
			if _, err := Open(context.Background(), m, key, iv, f.store(t)); !errors.Is(err, ErrKeyDecrypt) {
				t.Errorf("wrong iv: Open = %v", err)
			}
			if _, err := Open(context.Background(), m, key[:8], iv, f.store(t)); !errors.Is(err, ErrKeyDecrypt) {
				t.Errorf("short key: Open = %v", err)
			}
		})
	}
}

func TestDecrypterHidesBadCiphertexts(t *testing.T) {
	k := loadKeys(t)
	dec := Decrypter(k.cloudKey)
	size := k.cloudKey.Size()
	// Random ciphertexts (bad padding) and a well-padded non-hex message
	// all yield 32 hex digits, different each time.
	//lint:ignore SA1019 the bundle format uses PKCS#1 v1.5.
	notHex, err := rsa.EncryptPKCS1v15(rand.Reader, &k.cloudKey.PublicKey, bytes.Repeat([]byte("z"), 32))
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the bundle format uses PKCS#1 v1.5.
	shortMsg, err := rsa.EncryptPKCS1v15(rand.Reader, &k.cloudKey.PublicKey, []byte("abcd"))
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, size)
	_, _ = rand.Read(random)
	random[0] = 0 // below the modulus
	for name, ct := range map[string][]byte{"random": random, "not hex": notHex, "short message": shortMsg} {
		a, err := dec(ct)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := dec(ct)
		if len(a) != 32 || allHex(a) != 1 || bytes.Equal(a, b) {
			t.Errorf("%s: got %q then %q, want two random hex keys", name, a, b)
		}
	}
	if _, err := dec(append(random, 0)); err == nil {
		t.Error("wrong-length ciphertext: no error")
	}
	//lint:ignore SA1019 the bundle format uses PKCS#1 v1.5.
	good, err := rsa.EncryptPKCS1v15(rand.Reader, &k.cloudKey.PublicKey, []byte("00112233445566778899aabbccddeeff"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := dec(good); err != nil || string(got) != "00112233445566778899aabbccddeeff" {
		t.Errorf("good ciphertext: %q, %v", got, err)
	}
}

// resign re-signs an edited fixture manifest with the user's key, as an
// owner who made a bad bundle would.
func resign(t *testing.T, f fixture, edit func(*Manifest)) []byte {
	t.Helper()
	k := loadKeys(t)
	m, err := ParseManifest(f.manifest(t))
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	doc, err := encode(m, f.style, func(s []byte) ([]byte, error) {
		sum := sha1.Sum(s)
		return rsa.SignPKCS1v15(nil, k.userKey, crypto.SHA1, sum[:])
	})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestBadlyMadeBundles(t *testing.T) {
	f := fixtures[1]
	t.Run("image digest", func(t *testing.T) {
		doc := resign(t, f, func(m *Manifest) { m.Digest = strings.Repeat("0", 40) })
		data, m, err := openAll(t, doc, f.store(t))
		if !errors.Is(err, ErrImageDigest) {
			t.Fatalf("err = %v", err)
		}
		// Nearly all came out, but not the last bytes, and the end was an
		// error, not io.EOF.
		if int64(len(data)) >= m.Size || int64(len(data)) < m.Size-(1<<20) {
			t.Errorf("read %d of %d bytes before the error", len(data), m.Size)
		}
		// A caller that reads exactly Size bytes gets the error too.
		k := loadKeys(t)
		key, iv, _ := m.Keys(Decrypter(k.cloudKey))
		rc, err := Open(context.Background(), m, key, iv, f.store(t))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadFull(rc, make([]byte, m.Size)); !errors.Is(err, ErrImageDigest) {
			t.Errorf("ReadFull of Size bytes: %v", err)
		}
	})
	t.Run("image size", func(t *testing.T) {
		doc := resign(t, f, func(m *Manifest) { m.Size++ })
		mustFail(t, doc, f.store(t), ErrImageDigest)
	})
	t.Run("parts listed out of order", func(t *testing.T) {
		doc := resign(t, f, func(m *Manifest) {
			m.Parts[1].Filename, m.Parts[2].Filename = m.Parts[2].Filename, m.Parts[1].Filename
			m.Parts[1].SHA1, m.Parts[2].SHA1 = m.Parts[2].SHA1, m.Parts[1].SHA1
		})
		mustFail(t, doc, f.store(t), ErrImageDigest)
	})
	t.Run("last part left out", func(t *testing.T) {
		doc := resign(t, f, func(m *Manifest) { m.Parts = m.Parts[:2] })
		mustFail(t, doc, f.store(t), ErrImageDigest)
	})
	t.Run("extra part", func(t *testing.T) {
		s := f.store(t)
		s.files["disk.img.part.03"] = bytes.Repeat([]byte{1}, 32)
		doc := resign(t, f, func(m *Manifest) {
			sum := sha1.Sum(s.files["disk.img.part.03"])
			m.Parts = append(m.Parts, Part{Index: 3, Filename: "disk.img.part.03", SHA1: hex.EncodeToString(sum[:])})
		})
		mustFail(t, doc, s, ErrImageDigest)
	})
}

func TestOpenCanceled(t *testing.T) {
	k := loadKeys(t)
	f := fixtures[1]
	m, err := ParseManifest(f.manifest(t))
	if err != nil {
		t.Fatal(err)
	}
	key, iv, err := m.Keys(Decrypter(k.cloudKey))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := Open(ctx, m, key, iv, f.store(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, 1<<20); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(rc); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if _, err := rc.Read(make([]byte, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("sticky err = %v", err)
	}
}

func TestOpenAfterClose(t *testing.T) {
	k := loadKeys(t)
	f := fixtures[0]
	m, _ := ParseManifest(f.manifest(t))
	key, iv, _ := m.Keys(Decrypter(k.cloudKey))
	rc, err := Open(context.Background(), m, key, iv, f.store(t))
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if _, err := rc.Read(make([]byte, 10)); err == nil || err == io.EOF {
		t.Fatalf("read after close: %v", err)
	}
}
