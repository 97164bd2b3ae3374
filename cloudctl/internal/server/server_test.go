package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/admin"
	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/cloudctl/internal/metadata"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/config"
	"github.com/koala-cloud/koala/pkg/sigv4"
	"github.com/koala-cloud/koala/pkg/store"
)

func TestServeInternalAndAdmin(t *testing.T) {
	dir := t.TempDir()
	cfg := Defaults()
	cfg.Listen, cfg.MetadataListen, cfg.DataDir = "127.0.0.1:0", "", dir
	if _, err := New(cfg, slog.New(slog.DiscardHandler)); !errors.Is(err, admin.ErrNotInitialized) {
		t.Fatalf("uninitialised: %v", err)
	}
	db, err := OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	init, err := admin.NewService(db).Init(context.Background(), admin.InitOptions{Name: "test"})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	<-s.Ready()
	base := "http://" + s.Addr()

	// The admin socket serves the admin verbs.
	c, err := admin.Dial(ctx, SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := c.CreateAccount(ctx, "bob", "bob@example.com")
	if err != nil {
		t.Fatal(err)
	}

	// The internal API answers component keys only.
	walrus := &api.Client{BaseURL: base, AccessKeyID: init.Walrus.AccessKeyID, Secret: init.Walrus.SecretAccessKey}
	k, err := walrus.AccessKey(ctx, bob.AccessKeyID)
	if err != nil || k.SecretAccessKey != bob.SecretAccessKey || k.Account.CanonicalID != bob.CanonicalUserID {
		t.Fatalf("access key lookup: %+v %v", k, err)
	}
	if a, err := walrus.Account(ctx, "email", "bob@example.com"); err != nil || a.ID != bob.AccountID {
		t.Fatalf("account by email: %+v %v", a, err)
	}
	if _, err := walrus.AccessKey(ctx, "AKIANOBODY"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	user := &api.Client{BaseURL: base, AccessKeyID: bob.AccessKeyID, Secret: bob.SecretAccessKey}
	if _, err := user.AccessKey(ctx, bob.AccessKeyID); err == nil || errors.Is(err, api.ErrNotFound) {
		t.Fatalf("a user key opened the internal API: %v", err)
	}
	r, _ := http.NewRequest("GET", base+api.PathAccessKeys+bob.AccessKeyID, nil)
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	var e api.Error
	json.NewDecoder(res.Body).Decode(&e)
	res.Body.Close()
	if res.StatusCode != 403 || e.Code != "AuthFailure" {
		t.Fatalf("unsigned internal call: %d %+v", res.StatusCode, e)
	}
	// The EC2 API is behind the same listener.
	r, _ = http.NewRequest("GET", base+"/?Action=DescribeRegions&Version=2016-11-15", nil)
	if err := sigv4.Sign(r, bob.AccessKeyID, bob.SecretAccessKey, "us-east-1", "ec2", sigv4.EmptySHA256, time.Now()); err != nil {
		t.Fatal(err)
	}
	res, err = http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("DescribeRegions: %d %s", res.StatusCode, body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// initCloud runs `cloudctl admin init` on a data directory.
func initCloud(t *testing.T, dir string) {
	t.Helper()
	db, err := OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.NewService(db).Init(context.Background(), admin.InitOptions{Name: "test"})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
}

// fetch makes one unsigned request and returns the status and body.
func fetch(t *testing.T, method, url string, header http.Header) (int, string) {
	t.Helper()
	r, _ := http.NewRequest(method, url, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(body)
}

func TestServeMetadata(t *testing.T) {
	dir := t.TempDir()
	cfg := Defaults()
	cfg.Listen, cfg.MetadataListen, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", dir
	cfg.ReconcilePoll = config.Duration{Duration: time.Hour}
	initCloud(t, dir)
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The test's own connections come from 127.0.0.1, so the instance is
	// given that address. Its zone has a cluster, unreachable, so the
	// reconciler leaves it alone.
	in := instances.Instance{
		ID: "i-0123456789abcdef0", Reservation: "r-0123456789abcdef0", Owner: "123456789012",
		Type: api.VMType{Name: "m1.small"}, Image: api.ImageRef{ID: "emi-00000001", Location: "b/web.manifest.xml"},
		UserData: []byte("#cloud-config\nhostname: web\n"), Zone: "zone-a", PrivateIP: "127.0.0.1",
		State: api.Running, Desired: api.Running, Placed: true, Launched: time.Now().UTC(), Since: time.Now().UTC(),
	}
	err = s.db.Commit(func(tx *store.Tx) error {
		if err := clusters.Put(tx, clusters.Cluster{Zone: "zone-a", URL: "http://127.0.0.1:1"}); err != nil {
			return err
		}
		return instances.Put(tx, in)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-s.Ready()
	base := "http://" + s.MetadataAddr()
	if s.MetadataAddr() == s.Addr() {
		t.Fatalf("metadata shares the API listener %s", s.Addr())
	}

	// IMDSv1, unsigned.
	if code, body := fetch(t, "GET", base+"/latest/meta-data/instance-id", nil); code != 200 || body != in.ID {
		t.Errorf("instance-id: %d %q", code, body)
	}
	if code, body := fetch(t, "GET", base+"/latest/user-data", nil); code != 200 || body != string(in.UserData) {
		t.Errorf("user-data: %d %q", code, body)
	}
	if code, body := fetch(t, "GET", base+"/latest/meta-data/local-hostname", nil); code != 200 || body != "ip-127-0-0-1.ec2.internal" {
		t.Errorf("local-hostname: %d %q", code, body)
	}
	// Nothing of the API listener is on the metadata one.
	if code, _ := fetch(t, "GET", base+HealthPath, nil); code != 404 {
		t.Errorf("%s on the metadata listener: %d", HealthPath, code)
	}
	if code, _ := fetch(t, "POST", base+"/?Action=DescribeRegions&Version=2016-11-15", nil); code != 405 {
		t.Errorf("EC2 API on the metadata listener: %d", code)
	}

	// IMDSv2: a token from PUT opens GETs; a forged one does not.
	code, token := fetch(t, "PUT", base+"/latest/api/token", http.Header{metadata.TTLHeader: {"60"}})
	if code != 200 || token == "" {
		t.Fatalf("token: %d %q", code, token)
	}
	withToken := http.Header{metadata.TokenHeader: {token}}
	if code, body := fetch(t, "GET", base+"/latest/meta-data/instance-id", withToken); code != 200 || body != in.ID {
		t.Errorf("instance-id with token: %d %q", code, body)
	}
	if code, _ := fetch(t, "GET", base+"/latest/meta-data/instance-id", http.Header{metadata.TokenHeader: {token + "x"}}); code != 401 {
		t.Errorf("forged token: %d", code)
	}

	// The token key is kept in the database: a token outlives a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = New(cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	base = "http://" + s.MetadataAddr()
	if code, body := fetch(t, "GET", base+"/latest/meta-data/instance-id", withToken); code != 200 || body != in.ID {
		t.Errorf("token after a restart: %d %q", code, body)
	}

	// A terminated instance's address answers nothing.
	in.State = api.Terminated
	if err := s.db.Commit(func(tx *store.Tx) error { return instances.Put(tx, in) }); err != nil {
		t.Fatal(err)
	}
	if code, _ := fetch(t, "GET", base+"/latest/meta-data/instance-id", nil); code != 404 {
		t.Errorf("terminated: %d", code)
	}
	if code, _ := fetch(t, "PUT", base+"/latest/api/token", http.Header{metadata.TTLHeader: {"60"}}); code != 404 {
		t.Errorf("terminated, token: %d", code)
	}
}

func TestMetadataOff(t *testing.T) {
	dir := t.TempDir()
	cfg := Defaults()
	cfg.Listen, cfg.MetadataListen, cfg.DataDir = "127.0.0.1:0", "", dir
	initCloud(t, dir)
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.MetadataAddr() != "" {
		t.Errorf("metadata_listen \"\" serves on %s", s.MetadataAddr())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
