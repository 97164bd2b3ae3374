package server

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/cloudctl/internal/metadata"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// metadataLookup is the metadata service's [metadata.Lookup]: it finds the
// live instance whose private IP is the request's source address in
// cloudctl's instance records.
type metadataLookup struct {
	db     *store.DB
	region string
	// cache keeps decoded records, so a request scans the bucket and
	// compares bytes instead of decoding every instance.
	cache instances.Cache
}

// holdsIP reports whether an instance in state holds its private IP: from
// pending until it is stopped or terminated.
func holdsIP(state string) bool {
	switch state {
	case api.Pending, api.Running, api.Stopping, api.ShuttingDown:
		return true
	}
	return false
}

// Instance returns the metadata of the live instance at source. Two live
// instances claiming the same address is an error, never a guess.
func (l *metadataLookup) Instance(ctx context.Context, source netip.Addr) (metadata.Instance, bool, error) {
	ip := source.Unmap().String()
	var found []instances.Instance
	err := l.db.View(func(tx *store.Tx) error {
		all, err := l.cache.All(tx, "")
		for _, in := range all {
			if in.PrivateIP == ip && holdsIP(in.State) {
				found = append(found, in)
			}
		}
		return err
	})
	switch {
	case err != nil:
		return metadata.Instance{}, false, fmt.Errorf("instances at %s: %w", ip, err)
	case len(found) == 0:
		return metadata.Instance{}, false, nil
	case len(found) > 1:
		return metadata.Instance{}, false, fmt.Errorf("instances at %s: %s and %s both hold the address", ip, found[0].ID, found[1].ID)
	}
	return metadataOf(found[0], l.region), true, nil
}

// metadataOf is what the metadata service tells an instance about itself.
func metadataOf(in instances.Instance, region string) metadata.Instance {
	opts := in.Metadata.Effective()
	m := metadata.Instance{
		ID: in.ID, ImageID: in.Image.ID, ManifestPath: in.Image.Location, LaunchIndex: in.LaunchIndex,
		ReservationID: in.Reservation, InstanceType: in.Type.Name, Zone: in.Zone, Region: region,
		AccountID: in.Owner, PrivateDNS: instances.PrivateDNS(in.PrivateIP, region), MAC: in.MAC,
		UserData: in.UserData, LaunchTime: in.Launched,
		// As DescribeInstances reports the instance's metadata options.
		HTTPTokens: opts.HTTPTokens, HTTPPutHopLimit: opts.HopLimit, Disabled: opts.HTTPEndpoint == "disabled",
		BlockDevices: map[string]string{"ami": "sda1", "root": "/dev/sda1", "ephemeral0": "sda2"},
	}
	if in.Kernel != nil {
		m.KernelID = in.Kernel.ID
	}
	if in.Ramdisk != nil {
		m.RamdiskID = in.Ramdisk.ID
	}
	if ip, err := netip.ParseAddr(in.PrivateIP); err == nil {
		m.PrivateIP = ip
	}
	if ip, err := netip.ParseAddr(in.PublicIP); err == nil {
		m.PublicIP = ip
	}
	for _, g := range in.Groups {
		m.SecurityGroups = append(m.SecurityGroups, g.Name)
	}
	if in.KeyName != "" {
		m.PublicKeys = []metadata.PublicKey{{Name: in.KeyName, OpenSSH: in.PublicKey}}
	}
	return m
}
