package network

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/koala-cloud/koala/pkg/netfilter"
)

func addrs(pool []string, mapped map[string]string) Addresses {
	a := Addresses{Mapped: map[netip.Addr]string{}}
	for _, p := range pool {
		a.Pool = append(a.Pool, netip.MustParseAddr(p))
	}
	for pub, id := range mapped {
		a.Mapped[netip.MustParseAddr(pub)] = id
	}
	return a
}

func TestRulesetNATsMappedLeases(t *testing.T) {
	pool := []string{"192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13"}
	a := addrs(pool, map[string]string{
		"192.0.2.10": "i-1",
		"192.0.2.11": "i-gone", // no lease here (yet)
		"192.0.2.12": "i-2",
		"192.0.2.13": "i-2", // a stale second address of i-2: the lower one wins
	})
	want := []netfilter.NAT{
		{Public: netip.MustParseAddr("192.0.2.10"), Private: netip.MustParseAddr("10.0.0.2")},
		{Public: netip.MustParseAddr("192.0.2.12"), Private: netip.MustParseAddr("10.0.0.3")},
	}
	for _, tc := range []struct {
		mode Mode
		nat  bool
	}{{System, false}, {Static, false}, {ManagedNoVLAN, true}, {Managed, true}} {
		t.Run(string(tc.mode), func(t *testing.T) {
			n, _ := newTest(t, testConfig(tc.mode), newFakeHost("koala0"))
			for _, gs := range []Groups{{}, {Received: true}} {
				rs := n.Ruleset(leases, gs, a)
				switch {
				case tc.nat && !slices.Equal(rs.Elastic, want):
					t.Errorf("groups received %v: elastic %v, want %v", gs.Received, rs.Elastic, want)
				case !tc.nat && len(rs.Elastic) != 0:
					t.Errorf("groups received %v: elastic %v, want none in %s", gs.Received, rs.Elastic, tc.mode)
				}
			}
		})
	}
}

func TestSyncHoldsPublicAddresses(t *testing.T) {
	cfg := testConfig(ManagedNoVLAN)
	cfg.PublicInterface = "pub0"
	h := newFakeHost("koala0", "pub0")
	// Someone else's addresses: a /24 inside the pool's range and a /32
	// outside the pool.
	h.addrs["pub0"] = []string{"192.0.2.1/24", "198.51.100.7/32", "192.0.2.12/32"}
	n, _ := newTest(t, cfg, h)
	pool := []string{"192.0.2.1", "192.0.2.10", "192.0.2.11", "192.0.2.12"}
	held := func() []string {
		h.mu.Lock()
		defer h.mu.Unlock()
		out := slices.Clone(h.addrs["pub0"])
		slices.Sort(out)
		return out
	}
	steps := []struct {
		mapped map[string]string
		want   []string
	}{
		// 192.0.2.12 was left over from before a restart: it goes.
		{map[string]string{"192.0.2.10": "i-1", "192.0.2.11": "i-nolease"},
			[]string{"192.0.2.1/24", "192.0.2.10/32", "198.51.100.7/32"}},
		{map[string]string{"192.0.2.10": "i-1", "192.0.2.11": "i-2"},
			[]string{"192.0.2.1/24", "192.0.2.10/32", "192.0.2.11/32", "198.51.100.7/32"}},
		{map[string]string{"192.0.2.11": "i-2"},
			[]string{"192.0.2.1/24", "192.0.2.11/32", "198.51.100.7/32"}},
		{nil, []string{"192.0.2.1/24", "198.51.100.7/32"}},
	}
	for i, s := range steps {
		if err := n.Sync(context.Background(), leases, Groups{}, addrs(pool, s.mapped)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := held(); !slices.Equal(got, s.want) {
			t.Errorf("step %d: pub0 holds %v, want %v", i, got, s.want)
		}
	}
	// Nothing changes: nothing is added or removed.
	h.take()
	if err := n.Sync(context.Background(), leases, Groups{}, addrs(pool, nil)); err != nil {
		t.Fatal(err)
	}
	for _, c := range h.take() {
		if strings.Contains(c, "/32") {
			t.Errorf("idle sync ran %q", c)
		}
	}
}
