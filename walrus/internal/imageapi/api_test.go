package imageapi

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/bundle"
	"github.com/koala-cloud/koala/pkg/sigv4"
	"github.com/koala-cloud/koala/walrus/internal/acl"
	"github.com/koala-cloud/koala/walrus/internal/imagecache"
	"github.com/koala-cloud/koala/walrus/internal/objstore"
)

const fixtures = "../../../testdata/bundles"

var owner = acl.Owner{ID: "owner-cid", DisplayName: "owner"}

type components map[string]string

func (c components) ComponentKey(_ context.Context, id string) (string, string, error) {
	s, ok := c[id]
	if !ok {
		return "", "", errors.New("unknown")
	}
	return s, "nodectl", nil
}

// cloud decrypts bundle keys with the fixtures' cloud key, as cloudctl
// would.
type cloud struct{ key *rsa.PrivateKey }

func (c cloud) BundleKeys(_ context.Context, in api.BundleKeysRequest) (api.BundleKeysResponse, error) {
	dec := bundle.Decrypter(c.key)
	out := api.BundleKeysResponse{}
	for _, f := range []struct {
		in  string
		out *string
	}{{in.EncryptedKey, &out.Key}, {in.EncryptedIV, &out.IV}} {
		raw, err := hex.DecodeString(f.in)
		if err != nil {
			return out, err
		}
		pt, err := dec(raw)
		if err != nil {
			return out, err
		}
		*f.out = string(pt)
	}
	return out, nil
}

type env struct {
	t     *testing.T
	url   string
	store *objstore.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	st, err := objstore.Open(t.TempDir(), log, objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cache, err := imagecache.Open(t.TempDir(), 1<<30, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	keyPEM, _ := os.ReadFile(filepath.Join(fixtures, "keys", "cloud-pk.pem"))
	block, _ := pem.Decode(keyPEM)
	var priv *rsa.PrivateKey
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		priv = k.(*rsa.PrivateKey)
	} else if priv, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(st, cache, components{"AKIANODE": "node-secret"}, cloud{priv}, log))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	if err := st.CreateBucket(ctx, objstore.Bucket{Name: "images", Owner: owner}, 0); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, url: srv.URL, store: st}
}

// upload puts every file of a fixture bundle under prefix.
func (e *env) upload(dir, prefix string, policy acl.Policy) {
	e.t.Helper()
	files, _ := os.ReadDir(filepath.Join(fixtures, dir))
	for _, f := range files {
		data, _ := os.ReadFile(filepath.Join(fixtures, dir, f.Name()))
		_, err := e.store.Put(context.Background(), objstore.PutInput{Bucket: "images", Key: prefix + f.Name(),
			Body: bytes.NewReader(data), Size: int64(len(data)), Owner: owner, ACL: policy})
		if err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) call(method, path string, body any, header map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	r, _ := http.NewRequest(method, e.url+path, rd)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	if header["unsigned"] == "" {
		if err := sigv4.Sign(r, "AKIANODE", "node-secret", "internal", api.InternalService, "", time.Now()); err != nil {
			e.t.Fatal(err)
		}
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res, data
}

func wantSHA(t *testing.T) string {
	data, _ := os.ReadFile(filepath.Join(fixtures, "disk.img.sha256"))
	return strings.Fields(string(data))[0]
}

func TestImagePath(t *testing.T) {
	e := newEnv(t)
	execRead, _ := acl.Canned("aws-exec-read", owner, owner)
	for _, dir := range []string{"euca2ools", "euca2ools-multipart", "ec2-ami-tools"} {
		t.Run(dir, func(t *testing.T) {
			e.t = t
			e.upload(dir, dir+"/", execRead)
			loc := "images/" + dir + "/disk.img.manifest.xml"
			res, body := e.call("POST", api.PathManifests, api.ManifestRequest{Location: loc, CanonicalID: owner.ID}, nil)
			var m api.ManifestResponse
			json.Unmarshal(body, &m)
			if res.StatusCode != 200 || len(m.Manifest) == 0 {
				t.Fatalf("manifest: %d %s", res.StatusCode, body)
			}
			res, body = e.call("POST", api.PathImageCache, api.CacheRequest{Location: loc, Digest: m.Digest}, nil)
			var c api.CacheResponse
			json.Unmarshal(body, &c)
			if res.StatusCode != 200 || c.SHA256 != wantSHA(t) {
				t.Fatalf("cache: %d %s", res.StatusCode, body)
			}
			res, img := e.call("GET", api.PathImages+"?location="+loc+"&digest="+m.Digest, nil, nil)
			sum := sha256.Sum256(img)
			if res.StatusCode != 200 || hex.EncodeToString(sum[:]) != wantSHA(t) {
				t.Fatalf("image: %d, %d bytes", res.StatusCode, len(img))
			}
			res, part := e.call("GET", api.PathImages+"?location="+loc+"&digest="+m.Digest, nil, map[string]string{"Range": "bytes=1000-1999"})
			if res.StatusCode != 206 || !bytes.Equal(part, img[1000:2000]) {
				t.Fatalf("range: %d, %d bytes", res.StatusCode, len(part))
			}
		})
	}
	e.t = t
	// Refusals.
	loc := "images/euca2ools/disk.img.manifest.xml"
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		header map[string]string
		status int
		code   string
	}{
		{"unsigned", "POST", api.PathManifests, api.ManifestRequest{Location: loc, CanonicalID: owner.ID}, map[string]string{"unsigned": "1"}, 403, "AuthFailure"},
		{"another account's manifest", "POST", api.PathManifests, api.ManifestRequest{Location: loc, CanonicalID: "stranger"}, nil, 403, "AccessDenied"},
		{"missing manifest", "POST", api.PathManifests, api.ManifestRequest{Location: "images/none.xml", CanonicalID: owner.ID}, nil, 404, "NoSuchKey"},
		{"changed manifest", "POST", api.PathImageCache, api.CacheRequest{Location: loc, Digest: "00"}, nil, 400, "InvalidManifest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			res, body := e.call(tc.method, tc.path, tc.body, tc.header)
			var ae api.Error
			json.Unmarshal(body, &ae)
			if res.StatusCode != tc.status || ae.Code != tc.code {
				t.Fatalf("got %d %s", res.StatusCode, body)
			}
		})
	}
	e.t = t
	// A part replaced in storage: the image never reaches the cache.
	execRead2, _ := acl.Canned("aws-exec-read", owner, owner)
	e.upload("euca2ools-multipart", "broken/", execRead2)
	junk := bytes.Repeat([]byte{7}, 1<<20)
	if _, err := e.store.Put(context.Background(), objstore.PutInput{Bucket: "images", Key: "broken/disk.img.part.01",
		Body: bytes.NewReader(junk), Size: int64(len(junk)), Owner: owner}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(fixtures, "euca2ools-multipart", "disk.img.manifest.xml"))
	sum := sha256.Sum256(data)
	res, body := e.call("POST", api.PathImageCache, api.CacheRequest{Location: "images/broken/disk.img.manifest.xml", Digest: hex.EncodeToString(sum[:])}, nil)
	if res.StatusCode != 400 || !strings.Contains(string(body), "digest") {
		t.Fatalf("broken part: %d %s", res.StatusCode, body)
	}
}
