package api

import (
	"time"

	"github.com/koala-cloud/koala/pkg/sched"
)

// Instance states, as EC2 names them.
const (
	Pending      = "pending"
	Running      = "running"
	ShuttingDown = "shutting-down"
	Terminated   = "terminated"
	Stopping     = "stopping"
	Stopped      = "stopped"
)

// StateCode is EC2's numeric code of an instance state.
func StateCode(state string) int {
	switch state {
	case Pending:
		return 0
	case Running:
		return 16
	case ShuttingDown:
		return 32
	case Terminated:
		return 48
	case Stopping:
		return 64
	case Stopped:
		return 80
	}
	return 0
}

// VMType is an instance type: what one instance takes from a node.
type VMType struct {
	Name string `json:"name"`
	sched.Resources
}

// ImageRef names a registered image the way a node fetches it from
// walrus: the manifest's location and SHA-256 key walrus's cache, and
// SHA256 is the decrypted image's digest the node checks.
type ImageRef struct {
	ID       string `json:"id"`
	Location string `json:"location"`
	Digest   string `json:"digest"`
	SHA256   string `json:"sha256,omitempty"`
	Size     int64  `json:"size,omitempty"`
}

// InstanceSpec is an instance to run, as cloudctl hands it to a cluster
// and a cluster to a node. The cluster fills Node, MAC and PrivateIP.
type InstanceSpec struct {
	ID            string    `json:"id"`
	ReservationID string    `json:"reservation_id"`
	AccountID     string    `json:"account_id"`
	LaunchIndex   int       `json:"launch_index"`
	Type          VMType    `json:"type"`
	Image         ImageRef  `json:"image"`
	Kernel        *ImageRef `json:"kernel,omitempty"`
	Ramdisk       *ImageRef `json:"ramdisk,omitempty"`
	UserData      []byte    `json:"user_data,omitempty"`
	KeyName       string    `json:"key_name,omitempty"`
	PublicKey     string    `json:"public_key,omitempty"`
	Groups        []string  `json:"groups,omitempty"`
	Node          string    `json:"node,omitempty"`
	MAC           string    `json:"mac,omitempty"`
	PrivateIP     string    `json:"private_ip,omitempty"`
}

// Reason says why an instance changed state: EC2's StateReason.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// InstanceStatus is an instance's state as a node or a cluster knows it.
// Generation grows with each change the reporting daemon makes, so a
// receiver keeps the newest report of an instance.
type InstanceStatus struct {
	ID         string    `json:"id"`
	State      string    `json:"state"`
	Reason     *Reason   `json:"reason,omitempty"`
	Node       string    `json:"node,omitempty"`
	MAC        string    `json:"mac,omitempty"`
	PrivateIP  string    `json:"private_ip,omitempty"`
	Iface      string    `json:"iface,omitempty"` // the guest NIC's host device (libvirt's vnet3) while running
	Type       string    `json:"type,omitempty"`
	Since      time.Time `json:"since"`
	Generation uint64    `json:"generation"`
}

// RunRequest asks a cluster to run instances: all of them, or at least
// MinCount (the rest are left out of the answer), or none
// (InsufficientInstanceCapacity). A repeated request runs nothing twice.
type RunRequest struct {
	MinCount  int            `json:"min_count"`
	Instances []InstanceSpec `json:"instances"`
}

// RunResponse lists the instances the cluster took, with node, MAC and
// private IP filled.
type RunResponse struct {
	Instances []InstanceSpec `json:"instances"`
}

// Verbs of an instance action: POST .../instances/{id}/{verb}.
const (
	VerbTerminate = "terminate"
	VerbStop      = "stop"
	VerbStart     = "start"
	VerbReboot    = "reboot"
	VerbModify    = "modify"
	// VerbAttachVolume and VerbDetachVolume carry ActionRequest.Volume.
	VerbAttachVolume = "attach-volume"
	VerbDetachVolume = "detach-volume"
)

// ActionRequest carries the arguments of an instance action: the new
// type of a modify.
type ActionRequest struct {
	Type *VMType `json:"type,omitempty"`
	// Volume is the volume of VerbAttachVolume and VerbDetachVolume.
	Volume *VolumeAttachment `json:"volume,omitempty"`
}

// VolumeAttachment is a volume a node attaches to an instance: it lets
// its own AoE MAC use the volume at EBS (ebs's internal API), reaches it
// as Shelf.Slot, and hot-plugs it at Device.
type VolumeAttachment struct {
	VolumeID string `json:"volume_id"`
	// Device is the guest device, vdb to vdz.
	Device string `json:"device,omitempty"`
	EBS    string `json:"ebs,omitempty"`
	Shelf  uint16 `json:"shelf"`
	Slot   uint8  `json:"slot"`
	// Force detaches without waiting for the guest to let go.
	Force bool `json:"force,omitempty"`
}

// NodeStatus is what a node reports: its capacity and its instances.
type NodeStatus struct {
	Name      string           `json:"name"`
	Capacity  sched.Resources  `json:"capacity"`
	Instances []InstanceStatus `json:"instances"`
}

// TypeSlots is one VM type's room in a cluster.
type TypeSlots struct {
	VMType
	Free int `json:"free"`
	Max  int `json:"max"`
}

// ResourcesRequest asks a cluster how many instances of each type fit.
type ResourcesRequest struct {
	Types []VMType `json:"types"`
}

// ClusterResources is a cluster's answer: its room per type and its
// nodes.
type ClusterResources struct {
	Zone  string      `json:"zone"`
	Nodes int         `json:"nodes"`
	Up    int         `json:"up"`
	Types []TypeSlots `json:"types"`
}

// Paths of the instance API that clusters and nodes both serve.
const (
	PathInstances = "/internal/v1/instances"
	PathResources = "/internal/v1/resources" // cluster only
	PathNode      = "/internal/v1/node"      // node only: GET NodeStatus
	// PathNodeStatus is where a node pushes its NodeStatus to its
	// cluster: POST /internal/v1/nodes/{name}/status.
	PathNodes = "/internal/v1/nodes/"
	// PathInstanceEvents is where a cluster pushes instance statuses to
	// cloudctl: POST []InstanceStatus.
	PathInstanceEvents = "/internal/v1/instance-events"
)

// ConsoleOutput is the tail of an instance's serial console.
type ConsoleOutput struct {
	Output    []byte    `json:"output"`
	Timestamp time.Time `json:"timestamp"`
}
