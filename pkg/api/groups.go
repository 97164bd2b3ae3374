package api

// GroupRule is one rule of a security group as a cluster enforces it:
// Protocol "tcp", "udp", "icmp" or "all"; FromPort and ToPort the port
// range (for icmp the type and code; -1 means any); the allowed peers as
// IPv4 CIDRs and as the IDs of groups whose members are allowed.
type GroupRule struct {
	Protocol     string   `json:"protocol"`
	FromPort     int      `json:"from_port"`
	ToPort       int      `json:"to_port"`
	CIDRs        []string `json:"cidrs,omitempty"`
	SourceGroups []string `json:"source_groups,omitempty"`
}

// Group is a security group's rules, as cloudctl hands them to a
// cluster.
type Group struct {
	ID      string      `json:"id"`
	Owner   string      `json:"owner"`
	Ingress []GroupRule `json:"ingress"`
	Egress  []GroupRule `json:"egress"`
}

// GroupsRequest is the whole set of groups that a cluster's instances
// are in (PUT PathGroups): a group not in it has no rules.
type GroupsRequest struct {
	Groups []Group `json:"groups"`
}

// PathGroups is where cloudctl puts a cluster's security groups.
const PathGroups = "/internal/v1/groups"

// AddressMapping is a public address from a cluster's pool and the
// instance it reaches.
type AddressMapping struct {
	PublicIP   string `json:"public_ip"`
	InstanceID string `json:"instance_id"`
}

// AddressesRequest is the whole set of a cluster's public addresses
// (PUT PathAddresses): Pool is the cluster's pool as the administrator
// wrote it (see package ippool), Addresses those associated with its
// instances. An address of the pool that is not in Addresses reaches no
// one.
type AddressesRequest struct {
	Pool      []string         `json:"pool"`
	Addresses []AddressMapping `json:"addresses"`
}

// PathAddresses is where cloudctl puts a cluster's public addresses.
const PathAddresses = "/internal/v1/addresses"
