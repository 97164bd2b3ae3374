package ec2api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/admin"
	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/cloudctl/internal/vmtypes"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/ident"
	"github.com/koala-cloud/koala/pkg/sigv4"
	"github.com/koala-cloud/koala/pkg/store"
)

// BenchmarkDescribeInstances10k answers DescribeInstances for an account
// with 10,000 instances (in 20 reservations), end to end over HTTP.
func BenchmarkDescribeInstances10k(b *testing.B) {
	db, err := store.Open(filepath.Join(b.TempDir(), "c.db"), state.Schema, store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	res, err := admin.NewService(db).Init(ctx, admin.InitOptions{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	set, _ := admin.LoadSettings(db)
	a := New(Config{Regions: []Region{{Name: "us-east-1", Endpoint: "x"}}, MaxSkew: 15 * time.Minute, TokenKey: set.TokenKey, MaxBody: 1 << 20},
		db, Deps{}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(a)
	defer srv.Close()
	acct, _, err := a.accounts.Key(ctx, res.Admin.AccessKeyID)
	_ = acct
	if err != nil {
		b.Fatal(err)
	}
	_, owner, _ := a.accounts.Key(ctx, res.Admin.AccessKeyID)
	now := time.Now().UTC()
	typ := vmtypes.Defaults[0]
	kernel := api.ImageRef{ID: "aki-0123456789abcdef0", SHA256: strings.Repeat("a", 64)}
	err = db.Update(func(tx *store.Tx) error {
		for r := range 20 {
			resv := ident.Resource("r")
			for i := range 500 {
				in := instances.Instance{ID: ident.Resource("i"), Reservation: resv, Owner: owner.ID, LaunchIndex: i, Type: typ,
					Image:  api.ImageRef{ID: "ami-0123456789abcdef0", Location: "b/k.manifest.xml", SHA256: strings.Repeat("b", 64)},
					Kernel: &kernel, Groups: []instances.Group{{ID: "sg-0123456789abcdef0", Name: "default"}}, Zone: "us-east-1a",
					Node: "node-1", MAC: "d0:0d:0a:00:00:05", PrivateIP: "10.0.0.5", State: api.Running, Desired: api.Running,
					Placed: true, Launched: now.Add(time.Duration(r) * time.Second), Since: now}
				if err := instances.Put(tx, in); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	body := url.Values{"Action": {"DescribeInstances"}, "Version": {"2016-11-15"}}.Encode()
	b.ResetTimer()
	for range b.N {
		r, _ := http.NewRequest("POST", srv.URL+"/", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		if err := sigv4.Sign(r, res.Admin.AccessKeyID, res.Admin.SecretAccessKey, "us-east-1", "ec2", "", time.Now()); err != nil {
			b.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		b.ReportMetric(float64(n)/1e6, "MB/answer")
	}
}
