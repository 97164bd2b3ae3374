package bundle

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fixture is one bundle in testdata made by a real tool.
type fixture struct {
	dir     string
	bundler string
	style   Style
	parts   []string
}

var fixtures = []fixture{
	{"euca2ools", "euca2ools", StyleEuca2ools, []string{"disk.img.part.00"}},
	{"euca2ools-multipart", "euca2ools", StyleEuca2ools, []string{"disk.img.part.00", "disk.img.part.01", "disk.img.part.02"}},
	{"ec2-ami-tools", "ec2-ami-tools", StyleEC2AMITools, []string{"disk.img.part.0"}},
}

func (f fixture) path(name string) string { return filepath.Join(fixtureDir, f.dir, name) }

func (f fixture) manifest(t testing.TB) []byte {
	t.Helper()
	return readFile(t, f.path("disk.img.manifest.xml"))
}

// store loads the fixture's parts into a memory store.
func (f fixture) store(t testing.TB) *memStore {
	t.Helper()
	s := newMemStore()
	for _, p := range f.parts {
		s.files[p] = readFile(t, f.path(p))
	}
	return s
}

// testKeys are the fixtures' throw-away keys.
type testKeys struct {
	userCert, cloudCert *x509.Certificate
	userKey, cloudKey   *rsa.PrivateKey
}

var (
	keysOnce sync.Once
	keysVal  testKeys
	keysErr  error
)

func loadKeys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		var k testKeys
		if k.userCert, keysErr = parseCert(filepath.Join(fixtureDir, "keys", "user-cert.pem")); keysErr != nil {
			return
		}
		if k.cloudCert, keysErr = parseCert(filepath.Join(fixtureDir, "keys", "cloud-cert.pem")); keysErr != nil {
			return
		}
		if k.userKey, keysErr = parseKey(filepath.Join(fixtureDir, "keys", "user-pk.pem")); keysErr != nil {
			return
		}
		k.cloudKey, keysErr = parseKey(filepath.Join(fixtureDir, "keys", "cloud-pk.pem"))
		keysVal = k
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keysVal
}

func pemBlock(path string) (*pem.Block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	return b, nil
}

func parseCert(path string) (*x509.Certificate, error) {
	b, err := pemBlock(path)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(b.Bytes)
}

func parseKey(path string) (*rsa.PrivateKey, error) {
	b, err := pemBlock(path)
	if err != nil {
		return nil, err
	}
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an RSA key", path)
	}
	return rk, nil
}

// plainDecrypter is a decrypt function that reports padding errors, as a
// user-side tool may use.
func plainDecrypter(priv *rsa.PrivateKey) func([]byte) ([]byte, error) {
	return func(ct []byte) ([]byte, error) {
		//lint:ignore SA1019 the bundle format uses PKCS#1 v1.5.
		return rsa.DecryptPKCS1v15(nil, priv, ct)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureSHA256 is the hex sha256 of the fixtures' disk image.
func fixtureSHA256(t testing.TB) string {
	t.Helper()
	f := strings.Fields(string(readFile(t, filepath.Join(fixtureDir, "disk.img.sha256"))))
	if len(f) == 0 {
		t.Fatal("empty disk.img.sha256")
	}
	return f[0]
}

// memStore keeps parts in memory; it is a PartSource, PartSink and
// PartRemover.
type memStore struct {
	mu    sync.Mutex
	files map[string][]byte
}

func newMemStore() *memStore { return &memStore{files: map[string][]byte{}} }

func (s *memStore) Part(ctx context.Context, name string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.files[name]
	if !ok {
		return nil, fmt.Errorf("part %s: %w", name, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (s *memStore) Create(ctx context.Context, name string) (io.WriteCloser, error) {
	return &memFile{s: s, name: name}, nil
}

func (s *memStore) Remove(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, name)
	return nil
}

func (s *memStore) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.files {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (s *memStore) clone() *memStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := newMemStore()
	for n, b := range s.files {
		c.files[n] = bytes.Clone(b)
	}
	return c
}

type memFile struct {
	s    *memStore
	name string
	buf  bytes.Buffer
}

func (f *memFile) Write(p []byte) (int, error) { return f.buf.Write(p) }

func (f *memFile) Close() error {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.s.files[f.name] = f.buf.Bytes()
	return nil
}

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// genReader yields a deterministic image of n bytes without holding it:
// one 64 KiB block in four is random, the others a repeating pattern, so
// that it compresses somewhat, as disk images do.
type genReader struct {
	n, off int64
	rng    *rand.ChaCha8
	block  []byte
	pos    int
}

func newGenReader(seed byte, n int64) *genReader {
	var s [32]byte
	s[0] = seed
	return &genReader{n: n, rng: rand.NewChaCha8(s), block: make([]byte, 64<<10), pos: 64 << 10}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	if g.pos == len(g.block) {
		i := g.off / int64(len(g.block))
		if i%4 == 0 {
			_, _ = g.rng.Read(g.block)
		} else {
			for j := range g.block {
				g.block[j] = byte(i) ^ byte(j%251)
			}
		}
		g.pos = 0
	}
	n := copy(p, g.block[g.pos:])
	n = int(min(int64(n), g.n-g.off))
	g.pos += n
	g.off += int64(n)
	return n, nil
}

// createOpts returns options for a bundle signed with the fixture keys.
func createOpts(t testing.TB, name string, size int64) CreateOptions {
	k := loadKeys(t)
	return CreateOptions{
		Name:      name,
		User:      "123456789012",
		Arch:      "x86_64",
		Size:      size,
		UserCert:  k.userCert,
		UserKey:   k.userKey,
		CloudCert: k.cloudCert,
	}
}

// openAll parses, verifies and decrypts a manifest and reads the image.
func openAll(t testing.TB, doc []byte, src PartSource) ([]byte, *Manifest, error) {
	t.Helper()
	k := loadKeys(t)
	m, err := ParseManifest(doc)
	if err != nil {
		return nil, nil, err
	}
	if err := m.Verify(k.userCert); err != nil {
		return nil, m, err
	}
	key, iv, err := m.Keys(Decrypter(k.cloudKey))
	if err != nil {
		return nil, m, err
	}
	rc, err := Open(context.Background(), m, key, iv, src)
	if err != nil {
		return nil, m, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return data, m, err
}

// fixtureDir is where the interop bundles live, shared by every test of
// the module that needs them (see its README).
const fixtureDir = "../../testdata/bundles"
