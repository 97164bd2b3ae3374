package sched

import (
	"fmt"
	"strings"
)

// ZonePolicy chooses the cluster (availability zone) of a request that
// names none.
type ZonePolicy string

// The cluster policies.
const (
	// MostFree takes the cluster with the most free slots for the type:
	// Eucalyptus's default.
	MostFree ZonePolicy = "most-free"
	// RoundRobinZones takes the next cluster after a cursor that has room.
	RoundRobinZones ZonePolicy = "round-robin"
)

// ParseZonePolicy reads a cluster policy's name.
func ParseZonePolicy(s string) (ZonePolicy, error) {
	switch p := ZonePolicy(strings.ToLower(s)); p {
	case MostFree, RoundRobinZones:
		return p, nil
	}
	return "", fmt.Errorf("unknown zone policy %q (want most-free or round-robin)", s)
}

// Zone is one cluster as cluster choice sees it: its free slots for the
// requested type.
type Zone struct {
	Name string
	Free int
}

// PickZone chooses the zone for a request of count instances (at least
// one must fit). It returns the zone's index, the next cursor, and false
// when no zone has room for one. Ties go to the earlier zone.
func PickZone(p ZonePolicy, zones []Zone, cursor int) (index, next int, ok bool) {
	n := len(zones)
	if p == RoundRobinZones {
		if n == 0 {
			return -1, cursor, false
		}
		start := ((cursor % n) + n) % n
		for k := range n {
			i := (start + k) % n
			if zones[i].Free > 0 {
				return i, i + 1, true
			}
		}
		return -1, cursor, false
	}
	best := -1
	for i, z := range zones {
		if z.Free > 0 && (best < 0 || z.Free > zones[best].Free) {
			best = i
		}
	}
	return best, cursor, best >= 0
}
