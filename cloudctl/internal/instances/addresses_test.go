package instances

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/addresses"
	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// setPool gives a zone a pool of public addresses.
func (e *env) setPool(t *testing.T, zone string, auto bool, pool ...string) {
	t.Helper()
	err := e.db.Update(func(tx *store.Tx) error {
		cl, err := clusters.Get(tx, zone)
		if err != nil {
			return err
		}
		cl.PublicIPs, cl.AutoPublicIP = pool, auto
		return clusters.Put(tx, cl)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// publicIP returns a stored instance's public address.
func (e *env) publicIP(t *testing.T, id string) string {
	t.Helper()
	in, _ := e.get(t, id)
	return in.PublicIP
}

func (e *env) inUse(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := e.db.View(func(tx *store.Tx) error {
		all, err := addresses.List(tx, "")
		for _, a := range all {
			kind := "auto"
			if a.Elastic() {
				kind = "eip"
			}
			out[a.PublicIP] = kind + ":" + a.Instance
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAutoAssignedAddresses(t *testing.T) {
	e := newEnv(t, Config{}, "z-a", "z-b")
	e.setPool(t, "z-a", true, "192.0.2.10-192.0.2.11")
	e.setPool(t, "z-b", false, "198.51.100.1")
	for _, id := range []string{"i-1", "i-2", "i-3"} {
		e.put(t, inst(id, "z-a", api.Pending))
	}
	e.put(t, inst("i-4", "z-b", api.Pending))
	if _, err := e.c.Place(t.Context(), "z-a", []string{"i-1", "i-2", "i-3"}, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Place(t.Context(), "z-b", []string{"i-4"}, 1); err != nil {
		t.Fatal(err)
	}
	// Two addresses for three instances: the third runs without one; z-b
	// does not give them at launch.
	got := []string{e.publicIP(t, "i-1"), e.publicIP(t, "i-2"), e.publicIP(t, "i-3"), e.publicIP(t, "i-4")}
	if !slices.Equal(got, []string{"192.0.2.10", "192.0.2.11", "", ""}) {
		t.Fatalf("public addresses %q", got)
	}

	// An elastic address replaces i-1's launch-time one, which goes back
	// to the pool; taken off again, i-1 gets a launch-time one anew.
	var eip addresses.Address
	err := e.db.Update(func(tx *store.Tx) error {
		pool, _ := clusters.Cluster{PublicIPs: []string{"192.0.2.10-192.0.2.12"}}.Pool()
		var err error
		if eip, err = addresses.Allocate(tx, addresses.Request{Owner: acct, Zone: "z-a", Pool: pool, Domain: addresses.VPC, Now: time.Now()}); err != nil {
			return err
		}
		eip, err = Associate(tx, acct, eip, "i-1", false)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if eip.PublicIP != "192.0.2.12" || e.publicIP(t, "i-1") != "192.0.2.12" {
		t.Fatalf("elastic %+v, i-1 has %q", eip, e.publicIP(t, "i-1"))
	}
	want := map[string]string{"192.0.2.11": "auto:i-2", "192.0.2.12": "eip:i-1"}
	if got := e.inUse(t); !mapsEqual(got, want) {
		t.Errorf("in use %v, want %v", got, want)
	}

	e.c.SyncNetwork(t.Context())
	puts := e.clusters["z-a"].gotAddresses()
	if len(puts) != 1 || !slices.Equal(puts[0].Pool, []string{"192.0.2.10-192.0.2.11"}) ||
		!slices.Equal(puts[0].Addresses, []api.AddressMapping{{PublicIP: "192.0.2.11", InstanceID: "i-2"}, {PublicIP: "192.0.2.12", InstanceID: "i-1"}}) {
		t.Errorf("z-a got %+v", puts)
	}
	if puts := e.clusters["z-b"].gotAddresses(); len(puts) != 1 || len(puts[0].Addresses) != 0 {
		t.Errorf("z-b got %+v", puts)
	}

	err = e.db.Update(func(tx *store.Tx) error {
		a, err := addresses.Get(tx, "192.0.2.12")
		if err != nil {
			return err
		}
		return Disassociate(tx, a)
	})
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"192.0.2.10": "auto:i-1", "192.0.2.11": "auto:i-2", "192.0.2.12": "eip:"}
	if got := e.inUse(t); !mapsEqual(got, want) || e.publicIP(t, "i-1") != "192.0.2.10" {
		t.Errorf("after disassociate: in use %v, i-1 has %q", got, e.publicIP(t, "i-1"))
	}

	// Terminated and forgotten instances give launch-time addresses back.
	in, _ := e.get(t, "i-1")
	in.State = api.Terminated
	e.put(t, in)
	if err := e.db.Update(func(tx *store.Tx) error { return Delete(tx, "i-2") }); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"192.0.2.12": "eip:"}
	if got := e.inUse(t); !mapsEqual(got, want) || e.publicIP(t, "i-1") != "" {
		t.Errorf("after the instances ended: in use %v", got)
	}
	err = e.db.Update(func(tx *store.Tx) error {
		a, err := addresses.Get(tx, "192.0.2.12")
		if err != nil {
			return err
		}
		_, err = Associate(tx, acct, a, "i-1", false)
		return err
	})
	if !errors.Is(err, ErrState) {
		t.Errorf("associating with a terminated instance: %v", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
