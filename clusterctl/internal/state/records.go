package state

import (
	"time"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
)

// Node states.
const (
	Up   = "UP"
	Down = "DOWN"
)

// Node is a registered node.
type Node struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Seq is the registration order: GREEDY and ROUNDROBIN walk nodes by it.
	Seq      uint64          `json:"seq"`
	Capacity sched.Resources `json:"capacity"`
	// LastSeen is when a push or a poll of the node last succeeded, as of
	// the last write of the record (the daemon keeps the newest in memory).
	LastSeen time.Time `json:"last_seen"`
	State    string    `json:"state"`
}

// Instance is an instance the cluster took.
type Instance struct {
	// Spec is the instance as cloudctl asked for it, with Node, MAC and
	// PrivateIP filled by the cluster.
	Spec api.InstanceSpec `json:"spec"`
	// Status is the last known status, as the cluster reports it: its
	// Generation is the cluster's.
	Status api.InstanceStatus `json:"status"`
	// Desired is running, stopped or terminated.
	Desired string `json:"desired"`
	// Acked is set once the node accepted the launch (answered it or
	// reported the instance).
	Acked bool `json:"acked"`
	// Since is when the instance was taken (Desired running) or when its
	// termination was asked: the start of the launch_timeout window.
	Since time.Time `json:"since"`
	// Generation is the cluster's generation of the record's last change.
	Generation uint64 `json:"generation"`
	// NodeGeneration is the node's generation of the newest node report
	// merged into Status.
	NodeGeneration uint64 `json:"node_generation,omitempty"`
}

// Holds reports whether the instance holds node resources and its lease:
// every instance does until it is terminated.
func (in *Instance) Holds() bool { return in.Status.State != api.Terminated }

// Settings are the cluster's counters.
type Settings struct {
	// Cursor is the ROUNDROBIN cursor: the Seq of the node it chose last,
	// so that the next pick starts after it whatever nodes come and go.
	Cursor uint64 `json:"cursor"`
	// Generation is the last generation given to an instance change.
	Generation uint64 `json:"generation"`
	// NodeSeq is the last registration number given to a node.
	NodeSeq uint64 `json:"node_seq"`
}

// GroupSet is the set of security groups cloudctl last handed the
// cluster (PUT /internal/v1/groups). Its record exists once a set was
// received: until then the cluster enforces no groups.
type GroupSet struct {
	// Received is when the set was received.
	Received time.Time `json:"received"`
	// Groups are the groups, as cloudctl sent them.
	Groups []api.Group `json:"groups"`
}

// AddressSet is the set of public addresses cloudctl last handed the
// cluster (PUT /internal/v1/addresses).
type AddressSet struct {
	// Received is when the set was received.
	Received time.Time `json:"received"`
	// Pool is the cluster's pool as the administrator wrote it.
	Pool []string `json:"pool"`
	// Addresses are the pool's addresses associated with instances.
	Addresses []api.AddressMapping `json:"addresses"`
}
