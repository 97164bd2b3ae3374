package state

import "github.com/koala-cloud/koala/pkg/store"

// The top-level buckets of clusterctl's database.
const (
	Nodes          = "nodes"     // node name -> Node
	Instances      = "instances" // instance ID -> Instance
	Leases         = "leases"    // private IP -> instance ID (JSON string)
	SettingsBucket = "settings"  // SettingsKey -> Settings
)

// SettingsKey is the one key of the SettingsBucket bucket.
var SettingsKey = []byte("cluster")

// Schema is clusterctl's database schema.
var Schema = store.Schema{
	Version: 1,
	Buckets: []string{Nodes, Instances, Leases, SettingsBucket},
}
