package sched

import (
	"fmt"
	"slices"
	"testing"
)

var small = Resources{Cores: 1, MemoryMiB: 256, DiskGiB: 5}

func nodes(free ...int) []Node {
	out := make([]Node, len(free))
	for i, c := range free {
		r := Resources{Cores: c, MemoryMiB: c * 256, DiskGiB: c * 5}
		out[i] = Node{Name: fmt.Sprintf("n%d", i), Free: r, Total: r}
	}
	return out
}

func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy Policy
		nodes  []Node
		count  int
		cursor int
		want   []int
		next   int
	}{
		{"greedy fills the first node", Greedy, nodes(2, 2, 2), 3, 0, []int{0, 0, 1}, 0},
		{"greedy skips a full node", Greedy, nodes(0, 1, 2), 2, 0, []int{1, 2}, 0},
		{"round robin alternates", RoundRobin, nodes(2, 2), 3, 0, []int{0, 1, 0}, 1},
		{"round robin starts at the cursor", RoundRobin, nodes(2, 2, 2), 2, 2, []int{2, 0}, 1},
		{"round robin wraps a stale cursor", RoundRobin, nodes(1, 1), 1, 7, []int{1}, 2},
		{"round robin passes full nodes", RoundRobin, nodes(1, 0, 1), 2, 0, []int{0, 2}, 3},
		{"stops when nothing fits", Greedy, nodes(1, 1), 3, 0, []int{0, 1}, 0},
		{"no nodes", RoundRobin, nil, 2, 0, nil, 0},
		{"spread evens out", Spread, nodes(3, 3), 4, 0, []int{0, 1, 0, 1}, 0},
		{"pack piles up", Pack, nodes(2, 3), 4, 0, []int{0, 0, 1, 1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, next := Place(tc.policy, tc.nodes, small, tc.count, tc.cursor)
			if !slices.Equal(got, tc.want) || next != tc.next {
				t.Errorf("Place = %v next %d, want %v next %d", got, next, tc.want, tc.next)
			}
		})
	}
}

func TestPackPrefersBusyNode(t *testing.T) {
	ns := nodes(4, 4, 4)
	ns[2].Instances = 3
	ns[1].Instances = 1
	if i, _, _ := Pick(Pack, ns, small, 0); i != 2 {
		t.Errorf("pack chose %d, want the busiest node 2", i)
	}
	if i, _, _ := Pick(Spread, ns, small, 0); i != 0 {
		t.Errorf("spread chose %d, want the idlest node 0", i)
	}
}

func TestFitsChecksEveryResource(t *testing.T) {
	for _, tc := range []struct {
		name string
		free Resources
		want int
	}{
		{"cores bind", Resources{2, 4096, 100}, 2},
		{"memory binds", Resources{8, 512, 100}, 2},
		{"disk binds", Resources{8, 4096, 7}, 1},
		{"negative is none", Resources{-1, 4096, 100}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.free.Fits(small); got != tc.want {
				t.Errorf("Fits = %d, want %d", got, tc.want)
			}
			if covers := tc.free.Covers(small); covers != (tc.want > 0) {
				t.Errorf("Covers = %v with Fits %d", covers, tc.want)
			}
		})
	}
}

func TestSlots(t *testing.T) {
	ns := nodes(4, 2)
	ns[0].Free = ns[0].Free.Sub(small)
	free, most := Slots(ns, small)
	if free != 5 || most != 6 {
		t.Errorf("Slots = %d / %d, want 5 / 6", free, most)
	}
}

func TestParsePolicy(t *testing.T) {
	if p, err := ParsePolicy("roundrobin"); err != nil || p != RoundRobin {
		t.Errorf("ParsePolicy(roundrobin) = %q, %v", p, err)
	}
	if _, err := ParsePolicy("random"); err == nil {
		t.Error("ParsePolicy(random) succeeded")
	}
	if p, err := ParseZonePolicy("Most-Free"); err != nil || p != MostFree {
		t.Errorf("ParseZonePolicy = %q, %v", p, err)
	}
}

func TestPickZone(t *testing.T) {
	zones := []Zone{{"a", 2}, {"b", 5}, {"c", 5}, {"d", 0}}
	if i, _, ok := PickZone(MostFree, zones, 0); !ok || i != 1 {
		t.Errorf("most-free chose %d, want b", i)
	}
	var got []int
	cursor := 0
	for range 4 {
		i, next, ok := PickZone(RoundRobinZones, zones, cursor)
		if !ok {
			t.Fatal("round-robin found no zone")
		}
		got, cursor = append(got, i), next
	}
	if !slices.Equal(got, []int{0, 1, 2, 0}) {
		t.Errorf("round-robin chose %v, want [0 1 2 0] (d is full)", got)
	}
	if _, _, ok := PickZone(MostFree, []Zone{{"a", 0}}, 0); ok {
		t.Error("a full cloud found room")
	}
}

// BenchmarkPlace100kOn10k places 100,000 small instances, one request at
// a time, on 10,000 nodes of 16 cores each: the figure
// docs/benchmarks.md records.
func BenchmarkPlace100kOn10k(b *testing.B) {
	node := Resources{Cores: 16, MemoryMiB: 65536, DiskGiB: 1000}
	for _, p := range Policies {
		b.Run(string(p), func(b *testing.B) {
			ns := make([]Node, 10000)
			for b.Loop() {
				for i := range ns {
					ns[i] = Node{Free: node, Total: node}
				}
				cursor, placed := 0, 0
				for range 100000 {
					picks, next := Place(p, ns, small, 1, cursor)
					cursor, placed = next, placed+len(picks)
				}
				if placed != 100000 {
					b.Fatalf("placed %d", placed)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100000, "ns/instance")
		})
	}
}

func TestAssignStopsAtFirstMisfit(t *testing.T) {
	small := Resources{Cores: 1, MemoryMiB: 256, DiskGiB: 5}
	big := Resources{Cores: 4, MemoryMiB: 4096, DiskGiB: 20}
	nodes := []Node{{Name: "a", Free: Resources{Cores: 2, MemoryMiB: 1024, DiskGiB: 20}}}
	picks, _ := Assign(Greedy, nodes, []Resources{small, big, small}, 0)
	if len(picks) != 1 || nodes[0].Free.Cores != 1 {
		t.Fatalf("picks %v, free %+v", picks, nodes[0].Free)
	}
}
