package ec2api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/admin"
	"github.com/koala-cloud/koala/cloudctl/internal/ca"
	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

const fixtures = "../../../testdata/bundles"

// fakeWalrus serves manifests from a map and caches on request; it
// records the snapshot manifests it is asked to delete.
type fakeWalrus struct {
	objects  map[string][]byte // location -> manifest
	readable map[string]string // location -> canonical ID that may read it ("" anyone)
	cacheErr error

	mu              sync.Mutex
	deletedSnapshot []string
}

func (f *fakeWalrus) DeleteSnapshotManifest(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletedSnapshot = append(f.deletedSnapshot, id)
	return nil
}

func (f *fakeWalrus) Manifest(_ context.Context, in api.ManifestRequest) (api.ManifestResponse, error) {
	data, ok := f.objects[in.Location]
	if !ok {
		return api.ManifestResponse{}, fmt.Errorf("%w: NoSuchKey", api.ErrNotFound)
	}
	if who := f.readable[in.Location]; who != "" && who != in.CanonicalID {
		return api.ManifestResponse{}, &api.CallError{Status: 403, Code: "AccessDenied", Message: "no"}
	}
	sum := sha256.Sum256(data)
	return api.ManifestResponse{Manifest: data, Digest: hex.EncodeToString(sum[:])}, nil
}

func (f *fakeWalrus) CacheImage(context.Context, api.CacheRequest) (api.CacheResponse, error) {
	if f.cacheErr != nil {
		return api.CacheResponse{}, f.cacheErr
	}
	return api.CacheResponse{Size: 24 << 20, SHA256: "x"}, nil
}

func readFixture(t *testing.T, parts ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(append([]string{fixtures}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// newImageEnv is newEnv with the fixtures' cloud key adopted and alice
// holding the fixtures' signing certificate.
func newImageEnv(t *testing.T, cloudCert, cloudKey string) (*env, *fakeWalrus) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "c.db"), state.Schema, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	svc := admin.NewService(db)
	res, err := svc.Init(ctx, admin.InitOptions{Name: "t", CertPEM: readFixture(t, "keys", cloudCert), KeyPEM: readFixture(t, "keys", cloudKey)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddSigningCert(ctx, "admin", string(readFixture(t, "keys", "user-cert.pem"))); err != nil {
		t.Fatal(err)
	}
	bob, err := svc.CreateAccount(ctx, "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	set, _ := admin.LoadSettings(db)
	authority, err := ca.Load(set.CertPEM, set.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	walrus := &fakeWalrus{objects: map[string][]byte{}, readable: map[string]string{}}
	for _, dir := range []string{"euca2ools", "euca2ools-multipart", "ec2-ami-tools"} {
		walrus.objects["images/"+dir+"/disk.img.manifest.xml"] = readFixture(t, dir, "disk.img.manifest.xml")
	}
	a := New(Config{
		Regions: []Region{{Name: "us-east-1", Endpoint: "127.0.0.1:8773"}}, MaxSkew: 15 * time.Minute,
		TokenKey: set.TokenKey, MaxBody: 1 << 20,
	}, db, Deps{Bundles: walrus, Decrypt: authority.Decrypt, CloudCertPEM: set.CertPEM}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, db: db, api: a, alice: res.Admin, bob: bob, svc: svc}, walrus
}

func imageID(t *testing.T, body string) string {
	t.Helper()
	var r struct {
		ImageID string `xml:"imageId"`
	}
	xml.Unmarshal([]byte(body), &r)
	if r.ImageID == "" {
		t.Fatalf("no image id: %s", body)
	}
	return r.ImageID
}

func (e *env) imageState(cred admin.Credential, id string) string {
	e.t.Helper()
	var doc struct {
		State  string `xml:"imagesSet>item>imageState"`
		Reason string `xml:"imagesSet>item>stateReason>message"`
	}
	xml.Unmarshal([]byte(e.ok(cred, q("Action", "DescribeImages", "ImageId.1", id))), &doc)
	return doc.State + doc.Reason
}

func TestRegisterImage(t *testing.T) {
	e, walrus := newImageEnv(t, "cloud-cert.pem", "cloud-pk.pem")
	ctx := context.Background()
	var ids []string
	for i, dir := range []string{"euca2ools", "euca2ools-multipart", "ec2-ami-tools"} {
		id := imageID(t, e.ok(e.alice, q("Action", "RegisterImage", "ImageLocation", "images/"+dir+"/disk.img.manifest.xml",
			"Name", fmt.Sprintf("fixture-%d", i), "Description", dir)))
		if !strings.HasPrefix(id, "ami-") || e.imageState(e.alice, id) != "pending" {
			t.Fatalf("%s: %s %s", dir, id, e.imageState(e.alice, id))
		}
		e.api.cacheOne(ctx, id)
		if st := e.imageState(e.alice, id); st != "available" {
			t.Fatalf("%s after caching: %s", dir, st)
		}
		ids = append(ids, id)
	}
	walrus.objects["images/other/x.manifest.xml"] = walrus.objects["images/euca2ools/disk.img.manifest.xml"]
	walrus.readable["images/other/x.manifest.xml"] = "someone-else"
	for _, tc := range []struct {
		name   string
		cred   admin.Credential
		params []string
		code   string
	}{
		{"missing manifest", e.alice, []string{"ImageLocation", "images/none.manifest.xml", "Name", "img-1"}, "InvalidManifest"},
		{"unreadable manifest", e.alice, []string{"ImageLocation", "images/other/x.manifest.xml", "Name", "img-2"}, "InvalidManifest"},
		{"signed by another account's certificate", e.bob, []string{"ImageLocation", "images/euca2ools/disk.img.manifest.xml", "Name", "img-3"}, "InvalidManifest"},
		{"unknown kernel", e.alice, []string{"ImageLocation", "images/euca2ools/disk.img.manifest.xml", "Name", "img-4", "KernelId", "aki-00000000000000000"}, "InvalidAMIID.NotFound"},
		{"duplicate name", e.alice, []string{"ImageLocation", "images/euca2ools/disk.img.manifest.xml", "Name", "fixture-0"}, "InvalidAMIName.Duplicate"},
		{"bad name", e.alice, []string{"ImageLocation", "images/euca2ools/disk.img.manifest.xml", "Name", "x"}, "InvalidAMIName.Malformed"},
		{"bad location", e.alice, []string{"ImageLocation", "nobucket", "Name", "img-5"}, "InvalidParameterValue"},
		{"missing name", e.alice, []string{"ImageLocation", "images/euca2ools/disk.img.manifest.xml"}, "MissingParameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			if r := e.call(tc.cred, q(append([]string{"Action", "RegisterImage"}, tc.params...)...), time.Time{}); r.code != tc.code {
				t.Fatalf("got %q: %s", r.code, r.body)
			}
		})
	}
	e.t = t

	// Caching that fails leaves the image failed, with the reason.
	walrus.cacheErr = &api.CallError{Status: 400, Code: "InvalidManifest", Message: "part digest mismatch"}
	bad := imageID(t, e.ok(e.alice, q("Action", "RegisterImage", "ImageLocation", "images/euca2ools/disk.img.manifest.xml", "Name", "broken")))
	e.api.cacheOne(ctx, bad)
	if st := e.imageState(e.alice, bad); st != "failedpart digest mismatch" {
		t.Fatalf("failed image: %q", st)
	}

	// Launch permissions.
	img := ids[0]
	if r := e.call(e.bob, q("Action", "DescribeImages", "ImageId.1", img), time.Time{}); r.code != "InvalidAMIID.NotFound" {
		t.Fatalf("bob sees a private image: %s", r.body)
	}
	if r := e.call(e.bob, q("Action", "ModifyImageAttribute", "ImageId", img, "LaunchPermission.Add.1.UserId", e.bob.AccountID), time.Time{}); r.code != "InvalidAMIID.NotFound" {
		t.Fatalf("bob changed alice's image: %s", r.body)
	}
	e.ok(e.alice, q("Action", "ModifyImageAttribute", "ImageId", img, "LaunchPermission.Add.1.UserId", e.bob.AccountID))
	if st := e.imageState(e.bob, img); st != "available" {
		t.Fatalf("bob after the grant: %q", st)
	}
	perm := e.ok(e.alice, q("Action", "DescribeImageAttribute", "ImageId", img, "Attribute", "launchPermission"))
	if !strings.Contains(perm, "<userId>"+e.bob.AccountID+"</userId>") {
		t.Fatalf("launch permission: %s", perm)
	}
	if r := e.call(e.bob, q("Action", "DescribeImageAttribute", "ImageId", img, "Attribute", "launchPermission"), time.Time{}); r.code != "AuthFailure" {
		t.Fatalf("bob read the launch permissions: %s", r.body)
	}
	if r := e.call(e.bob, q("Action", "DeregisterImage", "ImageId", img), time.Time{}); r.code != "AuthFailure" {
		t.Fatalf("bob deregistered alice's image: %s", r.body)
	}
	// Public, then reset.
	e.ok(e.alice, q("Action", "ModifyImageAttribute", "ImageId", ids[1], "Attribute", "launchPermission", "OperationType", "add", "UserGroup.1", "all"))
	pub := e.ok(e.bob, q("Action", "DescribeImages", "ExecutableBy.1", "all"))
	if !strings.Contains(pub, ids[1]) || strings.Contains(pub, ids[0]) {
		t.Fatalf("public images: %s", pub)
	}
	e.ok(e.alice, q("Action", "ResetImageAttribute", "ImageId", img, "Attribute", "launchPermission"))
	if r := e.call(e.bob, q("Action", "DescribeImages", "ImageId.1", img), time.Time{}); r.code != "InvalidAMIID.NotFound" {
		t.Fatalf("bob sees the image after the reset: %s", r.body)
	}
	// Filters and owners.
	mine := e.ok(e.alice, q("Action", "DescribeImages", "Owner.1", "self", "Filter.1.Name", "name", "Filter.1.Value.1", "fixture-*"))
	if strings.Count(mine, "<imageId>") != 3 {
		t.Fatalf("own images by name: %s", mine)
	}
	if none := e.ok(e.alice, q("Action", "DescribeImages", "Filter.1.Name", "state", "Filter.1.Value.1", "pending")); strings.Contains(none, "<imageId>") {
		t.Fatalf("pending images: %s", none)
	}
	e.ok(e.alice, q("Action", "ModifyImageAttribute", "ImageId", img, "Description.Value", "new words"))
	if d := e.ok(e.alice, q("Action", "DescribeImageAttribute", "ImageId", img, "Attribute", "description")); !strings.Contains(d, "<value>new words</value>") {
		t.Fatalf("description: %s", d)
	}
	e.ok(e.alice, q("Action", "CreateTags", "ResourceId.1", img, "Tag.1.Key", "os", "Tag.1.Value", "linux"))
	if tagged := e.ok(e.alice, q("Action", "DescribeImages", "Filter.1.Name", "tag:os", "Filter.1.Value.1", "linux")); strings.Count(tagged, "<imageId>") != 1 {
		t.Fatalf("tagged: %s", tagged)
	}
	e.ok(e.alice, q("Action", "DeregisterImage", "ImageId", img))
	if r := e.call(e.alice, q("Action", "DescribeImages", "ImageId.1", img), time.Time{}); r.code != "InvalidAMIID.NotFound" {
		t.Fatalf("deregistered image: %s", r.body)
	}
	if cert := e.ok(e.bob, q("Action", "DescribeCloudCertificate")); !strings.Contains(cert, "BEGIN CERTIFICATE") {
		t.Fatalf("cloud certificate: %s", cert)
	}
}

func TestRegisterImageForAnotherCloud(t *testing.T) {
	// The user's certificate and key stand in for a cloud whose key the
	// fixtures were not encrypted for.
	e, _ := newImageEnv(t, "user-cert.pem", "user-pk.pem")
	r := e.call(e.alice, q("Action", "RegisterImage", "ImageLocation", "images/euca2ools/disk.img.manifest.xml", "Name", "elsewhere"), time.Time{})
	if r.code != "InvalidManifest" || !strings.Contains(r.body, "not encrypted for this cloud") {
		t.Fatalf("got %s", r.body)
	}
}

func TestUploadSigningCertificateWithAWSCLIShape(t *testing.T) {
	e, _ := newImageEnv(t, "cloud-cert.pem", "cloud-pk.pem")
	// bob brings the fixtures' certificate through IAM, then registers.
	p := q("Action", "UploadSigningCertificate", "CertificateBody", string(readFixture(t, "keys", "user-cert.pem")))
	p.Set("Version", "2010-05-08")
	body := e.ok(e.bob, p)
	if !strings.Contains(body, "<UploadSigningCertificateResult><Certificate><UserName>bob</UserName>") || !strings.Contains(body, "<ResponseMetadata><RequestId>") {
		t.Fatalf("IAM response: %s", body)
	}
	list := e.ok(e.bob, q("Action", "ListSigningCertificates", "Version", "2010-05-08"))
	if strings.Count(list, "<member>") != 1 {
		t.Fatalf("list: %s", list)
	}
	imageID(t, e.ok(e.bob, q("Action", "RegisterImage", "ImageLocation", "images/euca2ools/disk.img.manifest.xml", "Name", "bobs-image")))
	if r := e.call(e.bob, q("Action", "UploadSigningCertificate", "CertificateBody", "garbage"), time.Time{}); r.code != "MalformedCertificate" {
		t.Fatalf("garbage certificate: %s", r.body)
	}
}
