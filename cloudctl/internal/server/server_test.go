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
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sigv4"
)

func TestServeInternalAndAdmin(t *testing.T) {
	dir := t.TempDir()
	cfg := Defaults()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", dir
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
