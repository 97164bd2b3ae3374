package ec2api

import (
	"github.com/koala-cloud/koala/cloudctl/internal/addresses"
	"github.com/koala-cloud/koala/cloudctl/internal/images"
	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/cloudctl/internal/keypair"
	"github.com/koala-cloud/koala/cloudctl/internal/keypairs"
	"github.com/koala-cloud/koala/cloudctl/internal/secgroups"
	"github.com/koala-cloud/koala/cloudctl/internal/snapshots"
	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/cloudctl/internal/volumes"
	"github.com/koala-cloud/koala/pkg/awserr"
)

// rules maps domain errors to EC2 codes; the domain error's text, which
// each package words for the client, is the message.
var rules = []awserr.Rule{
	{Err: keypairs.ErrDuplicate, Code: "InvalidKeyPair.Duplicate", Detail: true},
	{Err: keypairs.ErrNotFound, Code: "InvalidKeyPair.NotFound", Detail: true},
	{Err: keypairs.ErrBadName, Code: "InvalidParameterValue", Detail: true},
	{Err: keypair.ErrFormat, Code: "InvalidKey.Format", Message: "Key is not in valid OpenSSH public key format"},
	{Err: keypair.ErrType, Code: "InvalidParameterValue", Detail: true},

	{Err: secgroups.ErrDuplicate, Code: "InvalidGroup.Duplicate", Detail: true},
	{Err: secgroups.ErrNotFound, Code: "InvalidGroup.NotFound", Detail: true},
	{Err: secgroups.ErrReserved, Code: "InvalidGroup.Reserved", Detail: true},
	{Err: secgroups.ErrInUse, Code: "DependencyViolation", Detail: true},
	{Err: secgroups.ErrRuleDuplicate, Code: "InvalidPermission.Duplicate", Detail: true},
	{Err: secgroups.ErrRuleNotFound, Code: "InvalidPermission.NotFound", Detail: true},
	{Err: secgroups.ErrInvalid, Code: "InvalidParameterValue", Detail: true},

	{Err: images.ErrNotFound, Code: "InvalidAMIID.NotFound", Detail: true},
	{Err: images.ErrState, Code: "IncorrectState", Detail: true},

	{Err: instances.ErrNotFound, Code: "InvalidInstanceID.NotFound", Detail: true},
	{Err: instances.ErrState, Code: "IncorrectInstanceState", Detail: true},
	{Err: instances.ErrCapacity, Code: "InsufficientInstanceCapacity", Detail: true},
	{Err: instances.ErrAddresses, Code: "InsufficientFreeAddressesInSubnet", Detail: true},
	{Err: instances.ErrZone, Code: "InvalidParameterValue", Detail: true},
	{Err: instances.ErrAddressZone, Code: "InvalidParameterCombination", Detail: true},

	{Err: addresses.ErrNotFound, Code: "InvalidAddress.NotFound", Detail: true},
	{Err: addresses.ErrNoAllocation, Code: "InvalidAllocationID.NotFound", Detail: true},
	{Err: addresses.ErrNoAssociation, Code: "InvalidAssociationID.NotFound", Detail: true},
	{Err: addresses.ErrLimit, Code: "AddressLimitExceeded", Detail: true},
	{Err: addresses.ErrNoCapacity, Code: "InsufficientAddressCapacity", Detail: true},
	{Err: addresses.ErrInvalid, Code: "InvalidParameterValue", Detail: true},
	{Err: addresses.ErrInUse, Code: "InvalidIPAddress.InUse", Detail: true},
	{Err: addresses.ErrAssociated, Code: "Resource.AlreadyAssociated", Detail: true},
	{Err: addresses.ErrUnavailableHere, Code: "InvalidParameterValue", Detail: true},

	{Err: volumes.ErrNotFound, Code: "InvalidVolume.NotFound", Detail: true},
	{Err: volumes.ErrInUse, Code: "VolumeInUse", Detail: true},
	{Err: volumes.ErrState, Code: "IncorrectState", Detail: true},
	{Err: volumes.ErrInvalid, Code: "InvalidParameterValue", Detail: true},

	{Err: snapshots.ErrNotFound, Code: "InvalidSnapshot.NotFound", Detail: true},
	{Err: snapshots.ErrState, Code: "IncorrectState", Detail: true},
	{Err: snapshots.ErrInvalid, Code: "InvalidParameterValue", Detail: true},
	{Err: snapshots.ErrNotOwner, Code: "UnauthorizedOperation", Detail: true},
	{Err: snapshots.ErrBusy, Code: "SnapshotCreationPerVolumeRateExceeded", Detail: true},

	{Err: tags.ErrTooMany, Code: "TagLimitExceeded", Detail: true},
	{Err: tags.ErrBadKey, Code: "InvalidParameterValue", Detail: true},
	{Err: tags.ErrBadValue, Code: "InvalidParameterValue", Detail: true},
	{Err: tags.ErrReserved, Code: "InvalidParameterValue", Message: "Tag keys starting with 'aws:' are reserved for internal use"},
}
