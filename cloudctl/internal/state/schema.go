package state

import "github.com/koala-cloud/koala/pkg/store"

// The top-level buckets of cloudctl's database.
const (
	Cloud        = "cloud"         // singleton settings: CA, token key (see Settings)
	Accounts     = "accounts"      // account ID -> accounts.Account
	AccountNames = "account_names" // display name -> account ID
	Canonical    = "canonical"     // canonical user ID -> account ID
	AccessKeys   = "access_keys"   // access key ID -> accounts.AccessKey
	KeyPairs     = "key_pairs"     // account ID + "/" + key name -> key pair
	Groups       = "groups"        // account ID + "/" + group ID -> security group
	Tags         = "tags"          // account ID + "/" + resource ID -> tag set
	Idempotency  = "idempotency"   // account ID + "/" + client token -> stored result
	Certs        = "certs"         // account ID + "/" + certificate ID -> signing certificate
	Images       = "images"        // image ID -> images.Image
	Instances    = "instances"     // instance ID -> instances.Instance
	VMTypes      = "vm_types"      // type name -> api.VMType (defaults when empty)
	Clusters     = "clusters"      // zone -> clusters.Cluster
	Addresses    = "addresses"     // public IPv4 (4 bytes) -> addresses.Address
	Volumes      = "volumes"       // volume ID -> volumes.Volume
	Snapshots    = "snapshots"     // snapshot ID -> snapshots.Snapshot
)

// Schema is cloudctl's database schema. A new bucket does not change the
// version: Open creates the buckets a database lacks.
var Schema = store.Schema{
	Version: 1,
	Buckets: []string{Cloud, Accounts, AccountNames, Canonical, AccessKeys, KeyPairs, Groups, Tags, Idempotency, Certs, Images,
		Instances, VMTypes, Clusters, Addresses, Volumes, Snapshots},
}
