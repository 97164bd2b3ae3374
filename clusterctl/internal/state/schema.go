package state

import "github.com/koala-cloud/koala/pkg/store"

// The top-level buckets of clusterctl's database.
const (
	Nodes          = "nodes"     // node name -> Node
	Instances      = "instances" // instance ID -> Instance
	Leases         = "leases"    // private IP -> instance ID (JSON string)
	SettingsBucket = "settings"  // SettingsKey -> Settings
	GroupsBucket   = "groups"    // GroupsKey -> GroupSet, AddressesKey -> AddressSet (each absent until cloudctl sent one)
)

// SettingsKey is the one key of the SettingsBucket bucket.
var SettingsKey = []byte("cluster")

// The keys of the GroupsBucket bucket.
var (
	GroupsKey    = []byte("set")
	AddressesKey = []byte("addresses")
)

// Schema is clusterctl's database schema. Versions:
//
//	1  nodes, instances, leases, settings
//	2  adds groups; nothing migrates (store.Open creates the bucket, and
//	   an absent GroupSet means none was received), but a version 1
//	   binary must not open the database: it would stop enforcing the
//	   groups it does not know of.
//	   Public addresses (AddressesKey) came later in the same bucket: an
//	   older binary ignores them, which stops their NAT after its next
//	   apply, not the enforcement of groups.
var Schema = store.Schema{
	Version: 2,
	Buckets: []string{Nodes, Instances, Leases, SettingsBucket, GroupsBucket},
}
