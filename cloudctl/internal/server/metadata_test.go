package server

import (
	"context"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/cloudctl/internal/metadata"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
	"github.com/koala-cloud/koala/pkg/store"
)

func putInstances(t *testing.T, db *store.DB, ins ...instances.Instance) {
	t.Helper()
	err := db.Commit(func(tx *store.Tx) error {
		for _, in := range ins {
			if err := instances.Put(tx, in); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMetadataLookup(t *testing.T) {
	db, err := OpenDB(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	launched := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	web := instances.Instance{
		ID: "i-0000000000000000a", Reservation: "r-0000000000000000a", Owner: "123456789012", LaunchIndex: 2,
		Type:   api.VMType{Name: "m1.small", Resources: sched.Resources{Cores: 1}},
		Image:  api.ImageRef{ID: "emi-00000001", Location: "images/web.manifest.xml"},
		Kernel: &api.ImageRef{ID: "eki-00000002"}, Ramdisk: &api.ImageRef{ID: "eri-00000003"},
		KeyName: "alice", PublicKey: "ssh-ed25519 AAAA alice",
		Groups:   []instances.Group{{ID: "sg-1", Name: "default"}, {ID: "sg-2", Name: "web"}},
		UserData: []byte("#!/bin/sh\n"), Zone: "zone-a", MAC: "d0:0d:0a:00:00:05", PrivateIP: "10.0.0.5",
		State: api.Running, Launched: launched,
	}
	db2 := instances.Instance{ID: "i-0000000000000000b", Owner: "210987654321", Zone: "zone-a", PrivateIP: "10.0.0.6",
		State: api.Pending, Type: api.VMType{Name: "m1.large"}, Image: api.ImageRef{ID: "emi-00000009"}}
	old := instances.Instance{ID: "i-0000000000000000c", PrivateIP: "10.0.0.7", State: api.Terminated}
	off := instances.Instance{ID: "i-0000000000000000d", PrivateIP: "10.0.0.8", State: api.Stopped}
	// A terminated instance once held web's address: it must not hide web.
	gone := instances.Instance{ID: "i-0000000000000000e", PrivateIP: "10.0.0.5", State: api.Terminated}
	putInstances(t, db, web, db2, old, off, gone)
	l := &metadataLookup{db: db, region: "eu-west-1"}
	ctx := context.Background()

	in, ok, err := l.Instance(ctx, netip.MustParseAddr("10.0.0.5"))
	if err != nil || !ok {
		t.Fatalf("web: %v %v", ok, err)
	}
	want := metadata.Instance{
		ID: web.ID, ImageID: "emi-00000001", KernelID: "eki-00000002", RamdiskID: "eri-00000003",
		ManifestPath: "images/web.manifest.xml", LaunchIndex: 2, ReservationID: web.Reservation,
		InstanceType: "m1.small", Zone: "zone-a", Region: "eu-west-1", AccountID: "123456789012",
		PrivateIP: netip.MustParseAddr("10.0.0.5"), PrivateDNS: "ip-10-0-0-5.eu-west-1.compute.internal",
		MAC: web.MAC, SecurityGroups: []string{"default", "web"},
		PublicKeys: []metadata.PublicKey{{Name: "alice", OpenSSH: "ssh-ed25519 AAAA alice"}},
		UserData:   []byte("#!/bin/sh\n"), LaunchTime: launched, HTTPTokens: "optional", HTTPPutHopLimit: 1,
		BlockDevices: map[string]string{"ami": "sda1", "root": "/dev/sda1", "ephemeral0": "sda2"},
	}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("web:\n got %+v\nwant %+v", in, want)
	}

	tests := []struct {
		name   string
		source string
		want   string // instance ID; empty: none
	}{
		{"running", "10.0.0.5", web.ID},
		{"IPv4-mapped source", "::ffff:10.0.0.5", web.ID},
		{"pending, another address", "10.0.0.6", db2.ID},
		{"terminated", "10.0.0.7", ""},
		{"stopped", "10.0.0.8", ""},
		{"unknown", "10.0.0.99", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, ok, err := l.Instance(ctx, netip.MustParseAddr(tt.source))
			if err != nil || ok != (tt.want != "") || in.ID != tt.want {
				t.Fatalf("got %q %v %v, want %q", in.ID, ok, err, tt.want)
			}
		})
	}
	if in, _, _ := l.Instance(ctx, netip.MustParseAddr("10.0.0.6")); in.PublicKeys != nil || in.KernelID != "" {
		t.Errorf("no key, no kernel: %+v", in)
	}

	// A change to a record is seen by the next request.
	for _, st := range []string{api.Stopping, api.ShuttingDown, api.Stopped, api.Terminated} {
		web.State = st
		putInstances(t, db, web)
		_, ok, err := l.Instance(ctx, netip.MustParseAddr("10.0.0.5"))
		if want := st == api.Stopping || st == api.ShuttingDown; ok != want || err != nil {
			t.Errorf("%s: found %v %v, want %v", st, ok, err, want)
		}
	}

	// Two live instances at one address: an error, not a guess.
	db2.PrivateIP = "10.0.0.7"
	old.State = api.Running
	putInstances(t, db, db2, old)
	if in, ok, err := l.Instance(ctx, netip.MustParseAddr("10.0.0.7")); err == nil || ok {
		t.Errorf("shared address: %q %v %v", in.ID, ok, err)
	}
}
