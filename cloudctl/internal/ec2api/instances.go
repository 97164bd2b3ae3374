package ec2api

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/koala-cloud/koala/cloudctl/internal/images"
	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/cloudctl/internal/keypairs"
	"github.com/koala-cloud/koala/cloudctl/internal/secgroups"
	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/cloudctl/internal/vmtypes"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/ec2query"
	"github.com/koala-cloud/koala/pkg/ident"
	"github.com/koala-cloud/koala/pkg/store"
)

// Fleet is how the EC2 API reaches the clusters that run instances.
type Fleet interface {
	ChooseZone(ctx context.Context, zone string, t api.VMType) (string, error)
	Place(ctx context.Context, zone string, ids []string, minCount int) ([]instances.Instance, error)
	Terminate(ctx context.Context, account string, ids []string) ([]instances.Change, error)
	Stop(ctx context.Context, account string, ids []string) ([]instances.Change, error)
	Start(ctx context.Context, account string, ids []string) ([]instances.Change, error)
	Reboot(ctx context.Context, account string, ids []string) error
	Modify(ctx context.Context, account, id string, t *api.VMType, userData []byte) error
	Console(ctx context.Context, account, id string) (api.ConsoleOutput, error)
	Resources(ctx context.Context, types []api.VMType) ([]instances.ZoneResources, error)
	Zones() ([]string, error)
	// KickNetwork makes the clusters get their security groups soon,
	// after a group or which instances run changed. It never blocks.
	KickNetwork()
}

// kickNetwork tells the fleet, when there is one, that security groups
// or their members changed.
func (a *API) kickNetwork() {
	if a.fleet != nil {
		a.fleet.KickNetwork()
	}
}

// MaxUserData is the most user data an instance takes, decoded.
const MaxUserData = 16 << 10

var instanceIDRE = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

// instanceIDs reads InstanceId.N, refusing malformed IDs.
func instanceIDs(p *ec2query.Params, required bool) ([]string, error) {
	ids, err := p.List("InstanceId")
	if err != nil {
		return nil, err
	}
	if required && len(ids) == 0 {
		return nil, awserr.New("MissingParameter", "The request must contain the parameter InstanceId")
	}
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !instanceIDRE.MatchString(id) {
			return nil, awserr.Newf("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// notFound is EC2's answer for instance IDs an account does not have.
func notFound(ids []string) error {
	if len(ids) == 1 {
		return awserr.Newf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", ids[0])
	}
	return awserr.Newf("InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(ids, ", "))
}

// checkOwned answers InvalidInstanceID.NotFound naming every ID the
// account does not have.
func (a *API) checkOwned(account string, ids []string) error {
	var missing []string
	err := a.view(func(tx *store.Tx) error {
		for _, id := range ids {
			if _, err := instances.Owned(tx, account, id); errors.Is(err, instances.ErrNotFound) {
				missing = append(missing, id)
			} else if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return notFound(missing)
	}
	return nil
}

// --- XML shapes -----------------------------------------------------------

type instanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type groupItem2 struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type placementXML struct {
	AvailabilityZone string `xml:"availabilityZone"`
	GroupName        string `xml:"groupName"`
	Tenancy          string `xml:"tenancy"`
}

type monitoringXML struct {
	State string `xml:"state"`
}

type cpuOptionsXML struct {
	CoreCount      int `xml:"coreCount"`
	ThreadsPerCore int `xml:"threadsPerCore"`
}

type instanceItem struct {
	InstanceID         string              `xml:"instanceId"`
	ImageID            string              `xml:"imageId"`
	State              instanceState       `xml:"instanceState"`
	PrivateDNSName     string              `xml:"privateDnsName"`
	DNSName            string              `xml:"dnsName"`
	Reason             string              `xml:"reason"`
	KeyName            string              `xml:"keyName,omitempty"`
	LaunchIndex        int                 `xml:"amiLaunchIndex"`
	InstanceType       string              `xml:"instanceType"`
	LaunchTime         ec2query.Time       `xml:"launchTime"`
	Placement          placementXML        `xml:"placement"`
	KernelID           string              `xml:"kernelId,omitempty"`
	RamdiskID          string              `xml:"ramdiskId,omitempty"`
	Monitoring         monitoringXML       `xml:"monitoring"`
	PrivateIP          string              `xml:"privateIpAddress,omitempty"`
	PublicIP           string              `xml:"ipAddress,omitempty"`
	Groups             []groupItem2        `xml:"groupSet>item"`
	StateReason        *stateReason        `xml:"stateReason"`
	Architecture       string              `xml:"architecture"`
	RootDeviceType     string              `xml:"rootDeviceType"`
	RootDeviceName     string              `xml:"rootDeviceName"`
	BlockDevices       []struct{}          `xml:"blockDeviceMapping>item"`
	VirtualizationType string              `xml:"virtualizationType"`
	ClientToken        string              `xml:"clientToken"`
	Tags               []xmlTag            `xml:"tagSet>item,omitempty"`
	Hypervisor         string              `xml:"hypervisor"`
	EbsOptimized       bool                `xml:"ebsOptimized"`
	CPUOptions         cpuOptionsXML       `xml:"cpuOptions"`
	MetadataOptions    *metadataOptionsXML `xml:"metadataOptions"`
	PlatformDetails    string              `xml:"platformDetails"`
	UsageOperation     string              `xml:"usageOperation"`
}

// privateDNS is the instance's private host name, as EC2 forms it.
func (a *API) privateDNS(ip string) string { return instances.PrivateDNS(ip, a.cfg.Regions[0].Name) }

func (a *API) instanceXML(in instances.Instance, ts []tags.Tag) instanceItem {
	item := instanceItem{
		InstanceID: in.ID, ImageID: in.Image.ID, State: instanceState{api.StateCode(in.State), in.State},
		PrivateDNSName: a.privateDNS(in.PrivateIP), Reason: in.Transition, KeyName: in.KeyName, LaunchIndex: in.LaunchIndex,
		InstanceType: in.Type.Name, LaunchTime: ec2query.Time{Time: in.Launched},
		Placement:  placementXML{AvailabilityZone: in.Zone, Tenancy: "default"},
		Monitoring: monitoringXML{"disabled"}, PrivateIP: in.PrivateIP, PublicIP: in.PublicIP, DNSName: in.PublicIP,
		Groups:       []groupItem2{},
		Architecture: "x86_64", RootDeviceType: "instance-store", RootDeviceName: "/dev/sda1",
		VirtualizationType: "paravirtual", ClientToken: in.ClientToken, Tags: tagSet(ts), Hypervisor: "xen",
		CPUOptions:      cpuOptionsXML{CoreCount: in.Type.Cores, ThreadsPerCore: 1},
		MetadataOptions: metadataOptions(in.Metadata),
		PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances",
	}
	if in.Kernel != nil {
		item.KernelID = in.Kernel.ID
	}
	if in.Ramdisk != nil {
		item.RamdiskID = in.Ramdisk.ID
	}
	for _, g := range in.Groups {
		item.Groups = append(item.Groups, groupItem2{g.ID, g.Name})
	}
	if in.Reason != nil {
		item.StateReason = &stateReason{in.Reason.Code, in.Reason.Message}
	}
	return item
}

// --- RunInstances ---------------------------------------------------------

type runResult struct {
	reservationRaw
}

// launch is a validated RunInstances request.
type launch struct {
	min, max   int
	typ        api.VMType
	image      images.Image
	kernel     *images.Image
	ramdisk    *images.Image
	keyName    string
	keyMat     string
	groupNames []string
	groupIDs   []string
	userData   []byte
	zone       string
	token      string
	tags       []tags.Tag
	metadata   instances.MetadataOptions
}

func (a *API) readLaunch(rq *request) (launch, error) {
	p := rq.p
	var l launch
	imageID, err := p.Required("ImageId")
	if err != nil {
		return l, err
	}
	if err := checkImageID(imageID); err != nil {
		return l, err
	}
	if l.min, err = p.Int("MinCount", -1); err != nil {
		return l, err
	}
	if l.max, err = p.Int("MaxCount", -1); err != nil {
		return l, err
	}
	switch {
	case !p.Has("MinCount"):
		return l, awserr.New("MissingParameter", "The request must contain the parameter MinCount")
	case !p.Has("MaxCount"):
		return l, awserr.New("MissingParameter", "The request must contain the parameter MaxCount")
	case l.min < 1:
		return l, awserr.Newf("InvalidParameterValue", "Value (%d) for parameter minCount is invalid. Expected a value greater than zero.", l.min)
	case l.max < 1:
		return l, awserr.Newf("InvalidParameterValue", "Value (%d) for parameter maxCount is invalid. Expected a value greater than zero.", l.max)
	case l.min > l.max:
		return l, awserr.New("InvalidParameterValue", "Value for parameter minCount is greater than maxCount.")
	}
	typeName := p.String("InstanceType")
	if typeName == "" {
		typeName = vmtypes.DefaultType
	}
	l.keyName = p.String("KeyName")
	if l.groupNames, err = p.List("SecurityGroup"); err != nil {
		return l, err
	}
	if l.groupIDs, err = p.List("SecurityGroupId"); err != nil {
		return l, err
	}
	if ud := p.String("UserData"); ud != "" {
		if l.userData, err = base64.StdEncoding.DecodeString(ud); err != nil {
			return l, awserr.New("InvalidUserData.Malformed", "Invalid BASE64 encoding of user data.")
		}
		if len(l.userData) > MaxUserData {
			return l, awserr.Newf("InvalidParameterValue", "User data is limited to %d bytes", MaxUserData)
		}
	}
	l.zone = p.String("Placement.AvailabilityZone")
	p.Skip("Placement.GroupName", "Placement.Tenancy", "Monitoring.Enabled", "AdditionalInfo", "EbsOptimized",
		"DisableApiTermination", "InstanceInitiatedShutdownBehavior")
	kernelID, ramdiskID := p.String("KernelId"), p.String("RamdiskId")
	l.token = p.String("ClientToken")
	if l.tags, err = tagSpecs(p, "instance"); err != nil {
		return l, err
	}
	if l.metadata, err = readMetadataOptions(p, "MetadataOptions.", instances.MetadataOptions{}); err != nil {
		return l, err
	}
	if err := rq.ready(); err != nil {
		return l, err
	}
	me := rq.account.ID
	err = a.view(func(tx *store.Tx) error {
		if l.typ, err = vmtypes.Get(tx, typeName); err != nil {
			return awserr.Newf("InvalidParameterValue", "Invalid value '%s' for InstanceType.", typeName)
		}
		if l.image, err = images.Visible(tx, me, imageID); err != nil {
			return err
		}
		if l.image.Type != images.Machine {
			return awserr.Newf("InvalidParameterValue", "The image %s is a %s image, not a machine image.", imageID, l.image.Type)
		}
		if l.image.State != images.Available {
			return awserr.Newf("InvalidAMIID.Unavailable", "The image %s is %s.", imageID, l.image.State)
		}
		defaults, err := images.GetDefaults(tx)
		if err != nil {
			return err
		}
		pick := func(given, ofImage, def, typ, param string) (*images.Image, error) {
			id := given
			if id == "" {
				id = ofImage
			}
			if id == "" {
				id = def
			}
			if id == "" {
				return nil, nil
			}
			img, err := images.Visible(tx, me, id)
			if err != nil {
				if errors.Is(err, images.ErrNotFound) {
					return nil, awserr.Newf("InvalidParameterValue", "Invalid value '%s' for %s: no such %s image.", id, param, typ)
				}
				return nil, err
			}
			if img.Type != typ || img.State != images.Available {
				return nil, awserr.Newf("InvalidParameterValue", "Invalid value '%s' for %s: not an available %s image.", id, param, typ)
			}
			return &img, nil
		}
		if l.kernel, err = pick(kernelID, l.image.KernelID, defaults.Kernel, images.Kernel, "kernelId"); err != nil {
			return err
		}
		if l.kernel == nil {
			return awserr.Newf("InvalidParameterValue", "The image %s names no kernel and the cloud has no default kernel; give KernelId.", imageID)
		}
		if l.ramdisk, err = pick(ramdiskID, l.image.RamdiskID, defaults.Ramdisk, images.Ramdisk, "ramdiskId"); err != nil {
			return err
		}
		if l.keyName != "" {
			kp, err := keypairs.Find(tx, me, l.keyName, false)
			if err != nil {
				return err
			}
			l.keyMat = kp.PublicKey
		}
		return nil
	})
	return l, err
}

// imageRef names an image the way nodes fetch it; an image recorded
// before its digest was kept is checked with walrus again.
func (a *API) imageRef(ctx context.Context, img images.Image) (api.ImageRef, error) {
	ref := api.ImageRef{ID: img.ID, Location: img.Location, Digest: img.ManifestDigest, SHA256: img.SHA256, Size: img.Size}
	if ref.SHA256 != "" || a.bundles == nil {
		return ref, nil
	}
	res, err := a.bundles.CacheImage(ctx, api.CacheRequest{Location: img.Location, Digest: img.ManifestDigest})
	if err != nil {
		return ref, fmt.Errorf("image %s: %w", img.ID, err)
	}
	ref.SHA256, ref.Size = res.SHA256, res.Size
	err = a.update(func(tx *store.Tx) error {
		return images.SetState(tx, img.ID, images.Available, "", "", res.Size, res.SHA256)
	})
	return ref, err
}

func (a *API) runInstances(rq *request) (any, error) {
	if a.fleet == nil {
		return nil, awserr.New("UnsupportedOperation", "This cloud runs no instances.")
	}
	l, err := a.readLaunch(rq)
	if err != nil {
		return nil, err
	}
	return idempotent(rq, l.token, func() (runResult, error) { return a.run(rq, l) })
}

func (a *API) run(rq *request, l launch) (runResult, error) {
	ctx := rq.ctx
	me := rq.account.ID
	imageRef, err := a.imageRef(ctx, l.image)
	if err != nil {
		return runResult{}, err
	}
	kernelRef, err := a.imageRef(ctx, *l.kernel)
	if err != nil {
		return runResult{}, err
	}
	var ramdiskRef *api.ImageRef
	if l.ramdisk != nil {
		r, err := a.imageRef(ctx, *l.ramdisk)
		if err != nil {
			return runResult{}, err
		}
		ramdiskRef = &r
	}
	zone, err := a.fleet.ChooseZone(ctx, l.zone, l.typ)
	if errors.Is(err, instances.ErrZone) {
		return runResult{}, awserr.Newf("InvalidParameterValue", "Invalid availability zone: [%s]", l.zone)
	}
	if err != nil {
		return runResult{}, err
	}
	now := a.cfg.Now().UTC()
	resv := ident.Resource("r")
	var ids []string
	err = a.update(func(tx *store.Tx) error {
		ids = ids[:0]
		var groups []instances.Group
		for _, n := range l.groupNames {
			g, err := secgroups.Find(tx, me, n)
			if err != nil {
				return err
			}
			groups = append(groups, instances.Group{ID: g.ID, Name: g.Name})
		}
		for _, id := range l.groupIDs {
			g, err := secgroups.Find(tx, me, id)
			if err != nil {
				return err
			}
			groups = append(groups, instances.Group{ID: g.ID, Name: g.Name})
		}
		if len(groups) == 0 {
			g, err := secgroups.EnsureDefault(tx, me)
			if err != nil {
				return err
			}
			groups = append(groups, instances.Group{ID: g.ID, Name: g.Name})
		}
		live := 0
		all, err := instances.All(tx, me)
		if err != nil {
			return err
		}
		for _, in := range all {
			if !in.Final() {
				live++
			}
		}
		room := a.cfg.MaxInstances - live
		if a.cfg.MaxInstances > 0 && room < l.min {
			return awserr.Newf("InstanceLimitExceeded", "Your quota allows for %d more running instance(s). You requested at least %d.", max(room, 0), l.min)
		}
		n := l.max
		if a.cfg.MaxInstances > 0 {
			n = min(n, room)
		}
		for i := range n {
			in := instances.Instance{
				ID: ident.Resource("i"), Reservation: resv, Owner: me, LaunchIndex: i, Type: l.typ,
				Image: imageRef, Kernel: &kernelRef, Ramdisk: ramdiskRef, KeyName: l.keyName, PublicKey: l.keyMat,
				Groups: groups, UserData: l.userData, ClientToken: l.token, Zone: zone, Metadata: l.metadata,
				State: api.Pending, Desired: api.Running, Launched: now, Since: now,
			}
			if err := instances.Put(tx, in); err != nil {
				return err
			}
			if len(l.tags) > 0 {
				if err := tags.Add(tx, me, in.ID, l.tags); err != nil {
					return err
				}
			}
			ids = append(ids, in.ID)
		}
		return nil
	})
	if err != nil {
		return runResult{}, err
	}
	// The groups reach the cluster while it takes the instances, and
	// again once it has: those it did not take are gone.
	a.fleet.KickNetwork()
	placed, err := a.fleet.Place(ctx, zone, ids, l.min)
	a.fleet.KickNetwork()
	if errors.Is(err, instances.ErrCapacity) || errors.Is(err, instances.ErrAddresses) {
		_ = a.update(func(tx *store.Tx) error {
			for _, id := range ids {
				if err := tags.Drop(tx, me, id); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if errors.Is(err, instances.ErrAddresses) {
		return runResult{}, awserr.Newf("InsufficientFreeAddressesInSubnet",
			"The availability zone %s does not have enough free private IP addresses to fulfill your request. %s", zone,
			strings.TrimPrefix(err.Error(), instances.ErrAddresses.Error()+": "))
	}
	if errors.Is(err, instances.ErrCapacity) {
		return runResult{}, awserr.Newf("InsufficientInstanceCapacity",
			"We currently do not have sufficient %s capacity in the Availability Zone you requested (%s). %s", l.typ.Name, zone,
			strings.TrimPrefix(err.Error(), instances.ErrCapacity.Error()+": "))
	}
	if err != nil {
		return runResult{}, err
	}
	tagsOf := map[string][]tags.Tag{}
	for _, in := range placed {
		tagsOf[in.ID] = l.tags
	}
	rs, err := a.renderReservations(placed, tagsOf, nil)
	if err != nil {
		return runResult{}, err
	}
	if len(rs) == 0 {
		return runResult{}, errors.New("the cluster took no instances and reported no error")
	}
	return runResult{rs[0]}, nil
}

// --- DescribeInstances ----------------------------------------------------

var instanceFilters = []string{
	"affinity", "architecture", "availability-zone", "client-token", "dns-name", "group-id", "group-name",
	"hypervisor", "image-id", "instance-id", "instance-lifecycle", "instance-state-code", "instance-state-name",
	"instance-type", "instance.group-id", "instance.group-name", "ip-address", "kernel-id", "key-name",
	"launch-index", "launch-time", "monitoring-state", "owner-id", "placement-group-name", "platform",
	"platform-details", "private-dns-name", "private-ip-address", "ramdisk-id", "reason", "requester-id",
	"reservation-id", "root-device-name", "root-device-type", "state-reason-code", "state-reason-message",
	"tenancy", "virtualization-type", "usage-operation", "cpu-options.core-count", "cpu-options.threads-per-core",
	"metadata-options.http-tokens", "metadata-options.http-endpoint", "metadata-options.http-put-hop-limit", "node-name",
}

func (a *API) instanceAttrs(in instances.Instance) attrs {
	md := in.Metadata.Effective()
	at := attrs{
		"architecture": {"x86_64"}, "availability-zone": {in.Zone}, "client-token": {in.ClientToken},
		"dns-name": {in.PublicIP}, "ip-address": {in.PublicIP}, "hypervisor": {"xen"}, "image-id": {in.Image.ID}, "instance-id": {in.ID},
		"instance-state-code": {strconv.Itoa(api.StateCode(in.State))}, "instance-state-name": {in.State},
		"instance-type": {in.Type.Name}, "key-name": {in.KeyName}, "launch-index": {strconv.Itoa(in.LaunchIndex)},
		"launch-time": {in.Launched.UTC().Format(ec2query.TimeLayout)}, "monitoring-state": {"disabled"},
		"owner-id": {in.Owner}, "platform-details": {"Linux/UNIX"}, "private-dns-name": {a.privateDNS(in.PrivateIP)},
		"private-ip-address": {in.PrivateIP}, "reason": {in.Transition}, "reservation-id": {in.Reservation},
		"root-device-name": {"/dev/sda1"}, "root-device-type": {"instance-store"}, "tenancy": {"default"},
		"virtualization-type": {"paravirtual"}, "usage-operation": {"RunInstances"},
		"cpu-options.core-count": {strconv.Itoa(in.Type.Cores)}, "cpu-options.threads-per-core": {"1"},
		"metadata-options.http-tokens": {md.HTTPTokens}, "metadata-options.http-endpoint": {md.HTTPEndpoint},
		"metadata-options.http-put-hop-limit": {strconv.Itoa(md.HopLimit)},
	}
	if in.Kernel != nil {
		at["kernel-id"] = []string{in.Kernel.ID}
	}
	if in.Ramdisk != nil {
		at["ramdisk-id"] = []string{in.Ramdisk.ID}
	}
	if in.Reason != nil {
		at["state-reason-code"] = []string{in.Reason.Code}
		at["state-reason-message"] = []string{in.Reason.Message}
	}
	for _, g := range in.Groups {
		at["group-id"] = append(at["group-id"], g.ID)
		at["group-name"] = append(at["group-name"], g.Name)
	}
	at["instance.group-id"], at["instance.group-name"] = at["group-id"], at["group-name"]
	return at
}

// selectInstances returns the account's instances that ids (all must
// exist) and filters select, with their tags, sorted by ID.
func (a *API) selectInstances(account string, ids []string, filters []ec2query.Filter, extra func(instances.Instance) bool) ([]instances.Instance, map[string][]tags.Tag, error) {
	out, tagsOf, _, err := a.selectVersions(account, ids, filters, extra)
	return out, tagsOf, err
}

// selectVersions is selectInstances with each record's cache version.
func (a *API) selectVersions(account string, ids []string, filters []ec2query.Filter, extra func(instances.Instance) bool) ([]instances.Instance, map[string][]tags.Tag, map[string]uint64, error) {
	var out []instances.Instance
	tagsOf := map[string][]tags.Tag{}
	versionOf := map[string]uint64{}
	if len(ids) > 0 {
		if err := a.checkOwned(account, ids); err != nil {
			return nil, nil, nil, err
		}
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	err := a.view(func(tx *store.Tx) error {
		all, versions, err := a.instances.AllVersions(tx, account)
		if err != nil {
			return err
		}
		for i, in := range all {
			if len(want) > 0 && !want[in.ID] {
				continue
			}
			if extra != nil && !extra(in) {
				continue
			}
			ts, err := tags.Of(tx, account, in.ID)
			if err != nil {
				return err
			}
			if len(filters) == 0 || match(filters, a.instanceAttrs(in), ts) {
				out = append(out, in)
				tagsOf[in.ID] = ts
				versionOf[in.ID] = versions[i]
			}
		}
		return nil
	})
	return out, tagsOf, versionOf, err
}

func (a *API) describeInstances(rq *request) (any, error) {
	p := rq.p
	ids, err := instanceIDs(p, false)
	if err != nil {
		return nil, err
	}
	filters, err := p.Filters()
	if err != nil {
		return nil, err
	}
	if err := checkFilters(filters, true, instanceFilters...); err != nil {
		return nil, err
	}
	paged := p.Has("MaxResults") || p.Has("NextToken")
	if paged && len(ids) > 0 {
		return nil, awserr.New("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	me := rq.account.ID
	chosen, tagsOf, versionOf, err := a.selectVersions(me, ids, filters, nil)
	if err != nil {
		return nil, err
	}
	page := chosen
	next := ""
	if paged {
		order := make([]string, len(chosen))
		byID := make(map[string]instances.Instance, len(chosen))
		for i, in := range chosen {
			order[i] = in.ID
			byID[in.ID] = in
		}
		sort.Strings(order)
		var pageIDs []string
		if pageIDs, next, err = a.tokens.Page(p, order, ec2query.Fingerprint(filters, "DescribeInstances", me), 5, 1000); err != nil {
			return nil, err
		}
		keep := make(map[string]bool, len(pageIDs))
		for _, id := range pageIDs {
			keep[id] = true
		}
		page = page[:0:0]
		for _, in := range chosen {
			if keep[in.ID] {
				page = append(page, in)
			}
		}
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	rs, err := a.renderReservations(page, tagsOf, versionOf)
	if err != nil {
		return nil, err
	}
	return describeInstancesRaw{Reservations: rs, NextToken: next}, nil
}

// describeInstancesRaw is DescribeInstancesResponse with each
// reservation's instances already encoded.
type describeInstancesRaw struct {
	Reservations []reservationRaw `xml:"reservationSet>item"`
	NextToken    string           `xml:"nextToken,omitempty"`
}

type reservationRaw struct {
	ReservationID string       `xml:"reservationId"`
	OwnerID       string       `xml:"ownerId"`
	Groups        []groupItem2 `xml:"groupSet>item"`
	Instances     rawXML       `xml:"instancesSet"`
}

type rawXML struct {
	Inner []byte `xml:",innerxml"`
}

// renderCache keeps each instance's encoded <item>, keyed by its record's
// version and its tags: encoding/xml is most of the cost of listing
// thousands of instances, and most of them do not change between calls.
type renderCache struct {
	mu sync.Mutex
	m  map[string]renderedItem
}

type renderedItem struct {
	version uint64
	tags    string
	xml     []byte
}

func tagsKey(ts []tags.Tag) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(t.Key)
		b.WriteByte(0)
		b.WriteString(t.Value)
		b.WriteByte(0)
	}
	return b.String()
}

// itemXML returns an instance's encoded <item>.
func (a *API) itemXML(in instances.Instance, ts []tags.Tag, version uint64) ([]byte, error) {
	key := tagsKey(ts)
	c := &a.rendered
	if version != 0 {
		c.mu.Lock()
		r, ok := c.m[in.ID]
		c.mu.Unlock()
		if ok && r.version == version && r.tags == key {
			return r.xml, nil
		}
	}
	data, err := xml.Marshal(struct {
		XMLName xml.Name `xml:"item"`
		instanceItem
	}{instanceItem: a.instanceXML(in, ts)})
	if err != nil || version == 0 {
		return data, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) > 200000 {
		c.m = map[string]renderedItem{}
	}
	c.m[in.ID] = renderedItem{version, key, data}
	c.mu.Unlock()
	return data, nil
}

// renderReservations groups instances, in order, by reservation, with
// their items encoded through the cache (a version of 0, or a nil
// versionOf, encodes without it).
func (a *API) renderReservations(ins []instances.Instance, tagsOf map[string][]tags.Tag, versionOf map[string]uint64) ([]reservationRaw, error) {
	out := []reservationRaw{}
	index := map[string]int{}
	items := make([][]byte, len(ins))
	size := map[string]int{}
	for k, in := range ins {
		item, err := a.itemXML(in, tagsOf[in.ID], versionOf[in.ID])
		if err != nil {
			return nil, err
		}
		items[k] = item
		size[in.Reservation] += len(item)
	}
	for k, in := range ins {
		i, ok := index[in.Reservation]
		if !ok {
			i = len(out)
			index[in.Reservation] = i
			r := reservationRaw{ReservationID: in.Reservation, OwnerID: in.Owner, Groups: []groupItem2{}}
			for _, g := range in.Groups {
				r.Groups = append(r.Groups, groupItem2{g.ID, g.Name})
			}
			r.Instances.Inner = make([]byte, 0, size[in.Reservation])
			out = append(out, r)
		}
		out[i].Instances.Inner = append(out[i].Instances.Inner, items[k]...)
	}
	return out, nil
}

// --- DescribeInstanceStatus ---------------------------------------------

type statusDetail struct {
	Name   string `xml:"name"`
	Status string `xml:"status"`
}

type statusSummary struct {
	Status  string         `xml:"status"`
	Details []statusDetail `xml:"details>item"`
}

type instanceStatusItem struct {
	InstanceID       string        `xml:"instanceId"`
	AvailabilityZone string        `xml:"availabilityZone"`
	State            instanceState `xml:"instanceState"`
	SystemStatus     statusSummary `xml:"systemStatus"`
	InstanceStatus   statusSummary `xml:"instanceStatus"`
	Events           []struct{}    `xml:"eventsSet>item"`
}

type describeInstanceStatusResult struct {
	Statuses  []instanceStatusItem `xml:"instanceStatusSet>item"`
	NextToken string               `xml:"nextToken,omitempty"`
}

func (a *API) describeInstanceStatus(rq *request) (any, error) {
	p := rq.p
	ids, err := instanceIDs(p, false)
	if err != nil {
		return nil, err
	}
	all, err := p.Bool("IncludeAllInstances")
	if err != nil {
		return nil, err
	}
	filters, err := p.Filters()
	if err != nil {
		return nil, err
	}
	if err := checkFilters(filters, false, "availability-zone", "instance-state-code", "instance-state-name",
		"instance-status.status", "instance-status.reachability", "system-status.status", "system-status.reachability"); err != nil {
		return nil, err
	}
	paged := p.Has("MaxResults") || p.Has("NextToken")
	if paged && len(ids) > 0 {
		return nil, awserr.New("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	me := rq.account.ID
	chosen, _, err := a.selectInstances(me, ids, nil, func(in instances.Instance) bool { return all || in.State == api.Running })
	if err != nil {
		return nil, err
	}
	byID := map[string]instanceStatusItem{}
	var order []string
	for _, in := range chosen {
		st := statusSummary{Status: "not-applicable", Details: []statusDetail{}}
		if in.State == api.Running {
			st = statusSummary{Status: "ok", Details: []statusDetail{{"reachability", "passed"}}}
		}
		item := instanceStatusItem{InstanceID: in.ID, AvailabilityZone: in.Zone, State: instanceState{api.StateCode(in.State), in.State},
			SystemStatus: st, InstanceStatus: st}
		at := attrs{"availability-zone": {in.Zone}, "instance-state-code": {strconv.Itoa(item.State.Code)},
			"instance-state-name": {in.State}, "instance-status.status": {st.Status}, "system-status.status": {st.Status}}
		if len(st.Details) > 0 {
			at["instance-status.reachability"] = []string{"passed"}
			at["system-status.reachability"] = []string{"passed"}
		}
		if match(filters, at, nil) {
			byID[in.ID] = item
			order = append(order, in.ID)
		}
	}
	sort.Strings(order)
	next := ""
	if paged {
		if order, next, err = a.tokens.Page(p, order, ec2query.Fingerprint(filters, "DescribeInstanceStatus", me, strconv.FormatBool(all)), 5, 1000); err != nil {
			return nil, err
		}
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	out := describeInstanceStatusResult{Statuses: []instanceStatusItem{}, NextToken: next}
	for _, id := range order {
		out.Statuses = append(out.Statuses, byID[id])
	}
	return out, nil
}

// --- state changes --------------------------------------------------------

type stateChangeItem struct {
	InstanceID    string        `xml:"instanceId"`
	CurrentState  instanceState `xml:"currentState"`
	PreviousState instanceState `xml:"previousState"`
}

type terminateResult struct {
	Changes []stateChangeItem `xml:"instancesSet>item"`
}

type stopResult struct {
	Changes []stateChangeItem `xml:"instancesSet>item"`
}

type startResult struct {
	Changes []stateChangeItem `xml:"instancesSet>item"`
}

func changeItems(cs []instances.Change) []stateChangeItem {
	out := make([]stateChangeItem, len(cs))
	for i, c := range cs {
		out[i] = stateChangeItem{c.ID, instanceState{api.StateCode(c.Current), c.Current}, instanceState{api.StateCode(c.Previous), c.Previous}}
	}
	return out
}

// stateAction reads InstanceId.N for a state-changing action and checks
// the account has them all.
func (a *API) stateAction(rq *request, skip ...string) ([]string, error) {
	if a.fleet == nil {
		return nil, awserr.New("UnsupportedOperation", "This cloud runs no instances.")
	}
	ids, err := instanceIDs(rq.p, true)
	if err != nil {
		return nil, err
	}
	rq.p.Skip(skip...)
	if err := a.checkOwned(rq.account.ID, ids); err != nil {
		return nil, err
	}
	return ids, rq.ready()
}

func (a *API) terminateInstances(rq *request) (any, error) {
	ids, err := a.stateAction(rq)
	if err != nil {
		return nil, err
	}
	cs, err := a.fleet.Terminate(rq.ctx, rq.account.ID, ids)
	if err != nil {
		return nil, err
	}
	a.fleet.KickNetwork()
	return terminateResult{changeItems(cs)}, nil
}

func (a *API) stopInstances(rq *request) (any, error) {
	ids, err := a.stateAction(rq, "Force", "Hibernate")
	if err != nil {
		return nil, err
	}
	cs, err := a.fleet.Stop(rq.ctx, rq.account.ID, ids)
	if err != nil {
		return nil, err
	}
	return stopResult{changeItems(cs)}, nil
}

func (a *API) startInstances(rq *request) (any, error) {
	ids, err := a.stateAction(rq, "AdditionalInfo")
	if err != nil {
		return nil, err
	}
	cs, err := a.fleet.Start(rq.ctx, rq.account.ID, ids)
	if err != nil {
		return nil, err
	}
	return startResult{changeItems(cs)}, nil
}

func (a *API) rebootInstances(rq *request) (any, error) {
	ids, err := a.stateAction(rq)
	if err != nil {
		return nil, err
	}
	if err := a.fleet.Reboot(rq.ctx, rq.account.ID, ids); err != nil {
		return nil, err
	}
	return returnResult{true}, nil
}

// --- console --------------------------------------------------------------

type consoleResult struct {
	InstanceID string        `xml:"instanceId"`
	Timestamp  ec2query.Time `xml:"timestamp"`
	Output     string        `xml:"output,omitempty"`
}

func (a *API) getConsoleOutput(rq *request) (any, error) {
	if a.fleet == nil {
		return nil, awserr.New("UnsupportedOperation", "This cloud runs no instances.")
	}
	id, err := rq.p.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	if !instanceIDRE.MatchString(id) {
		return nil, awserr.Newf("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
	}
	if _, err := rq.p.Bool("Latest"); err != nil {
		return nil, err
	}
	if err := a.checkOwned(rq.account.ID, []string{id}); err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	out, err := a.fleet.Console(rq.ctx, rq.account.ID, id)
	if err != nil {
		return nil, err
	}
	res := consoleResult{InstanceID: id, Timestamp: ec2query.Time{Time: out.Timestamp}}
	if len(out.Output) > 0 {
		res.Output = base64.StdEncoding.EncodeToString(out.Output)
	}
	if res.Timestamp.IsZero() {
		res.Timestamp.Time = a.cfg.Now()
	}
	return res, nil
}

// --- attributes -----------------------------------------------------------

type attrValue struct {
	Value string `xml:"value"`
}

type boolValue struct {
	Value bool `xml:"value"`
}

type instanceAttributeResult struct {
	InstanceID        string        `xml:"instanceId"`
	InstanceType      *attrValue    `xml:"instanceType"`
	UserData          *attrValue    `xml:"userData"`
	Kernel            *attrValue    `xml:"kernel"`
	Ramdisk           *attrValue    `xml:"ramdisk"`
	RootDeviceName    *attrValue    `xml:"rootDeviceName"`
	DisableAPIStop    *boolValue    `xml:"disableApiStop"`
	DisableAPITerm    *boolValue    `xml:"disableApiTermination"`
	ShutdownBehavior  *attrValue    `xml:"instanceInitiatedShutdownBehavior"`
	EbsOptimized      *boolValue    `xml:"ebsOptimized"`
	SourceDestCheck   *boolValue    `xml:"sourceDestCheck"`
	EnaSupport        *boolValue    `xml:"enaSupport"`
	Groups            *[]groupItem2 `xml:"groupSet>item"`
	BlockDeviceMapped *[]struct{}   `xml:"blockDeviceMapping>item"`
	ProductCodes      *[]struct{}   `xml:"productCodes>item"`
}

func (a *API) describeInstanceAttribute(rq *request) (any, error) {
	id, err := rq.p.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	name, err := rq.p.Required("Attribute")
	if err != nil {
		return nil, err
	}
	if !instanceIDRE.MatchString(id) {
		return nil, awserr.Newf("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
	}
	if err := a.checkOwned(rq.account.ID, []string{id}); err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	var in instances.Instance
	if err := a.view(func(tx *store.Tx) error {
		in, err = instances.Owned(tx, rq.account.ID, id)
		return err
	}); err != nil {
		return nil, err
	}
	out := instanceAttributeResult{InstanceID: id}
	str := func(s string) *attrValue { return &attrValue{s} }
	switch name {
	case "instanceType":
		out.InstanceType = str(in.Type.Name)
	case "userData":
		out.UserData = &attrValue{}
		if len(in.UserData) > 0 {
			out.UserData = str(base64.StdEncoding.EncodeToString(in.UserData))
		}
	case "kernel":
		out.Kernel = &attrValue{}
		if in.Kernel != nil {
			out.Kernel = str(in.Kernel.ID)
		}
	case "ramdisk":
		out.Ramdisk = &attrValue{}
		if in.Ramdisk != nil {
			out.Ramdisk = str(in.Ramdisk.ID)
		}
	case "rootDeviceName":
		out.RootDeviceName = str("/dev/sda1")
	case "disableApiTermination":
		out.DisableAPITerm = &boolValue{false}
	case "disableApiStop":
		out.DisableAPIStop = &boolValue{false}
	case "instanceInitiatedShutdownBehavior":
		out.ShutdownBehavior = str("terminate")
	case "ebsOptimized":
		out.EbsOptimized = &boolValue{false}
	case "sourceDestCheck":
		out.SourceDestCheck = &boolValue{true}
	case "enaSupport":
		out.EnaSupport = &boolValue{false}
	case "groupSet":
		gs := []groupItem2{}
		for _, g := range in.Groups {
			gs = append(gs, groupItem2{g.ID, g.Name})
		}
		out.Groups = &gs
	case "blockDeviceMapping":
		out.BlockDeviceMapped = &[]struct{}{}
	case "productCodes":
		out.ProductCodes = &[]struct{}{}
	default:
		return nil, awserr.Newf("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Unknown attribute.", name)
	}
	return out, nil
}

func (a *API) modifyInstanceAttribute(rq *request) (any, error) {
	if a.fleet == nil {
		return nil, awserr.New("UnsupportedOperation", "This cloud runs no instances.")
	}
	p := rq.p
	id, err := p.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	if !instanceIDRE.MatchString(id) {
		return nil, awserr.Newf("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
	}
	var typeName string
	var userData []byte
	var haveUD bool
	switch attr := p.String("Attribute"); {
	case p.Has("InstanceType.Value"):
		typeName = p.String("InstanceType.Value")
	case p.Has("UserData.Value"):
		userData, haveUD = []byte(p.String("UserData.Value")), true
	case attr == "instanceType":
		typeName = p.String("Value")
	case attr == "userData":
		userData, haveUD = []byte(p.String("Value")), true
	case attr != "":
		return nil, awserr.Newf("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Only instanceType and userData can be modified here.", attr)
	default:
		return nil, awserr.New("MissingParameter", "The request must contain the parameter InstanceType or UserData")
	}
	if haveUD {
		// The query carries the user data base64-encoded.
		if dec, err := base64.StdEncoding.DecodeString(string(userData)); err == nil {
			userData = dec
		}
		if len(userData) > MaxUserData {
			return nil, awserr.Newf("InvalidParameterValue", "User data is limited to %d bytes", MaxUserData)
		}
		if userData == nil {
			userData = []byte{}
		}
	}
	if err := a.checkOwned(rq.account.ID, []string{id}); err != nil {
		return nil, err
	}
	var t *api.VMType
	if typeName != "" {
		err := a.view(func(tx *store.Tx) error {
			vt, err := vmtypes.Get(tx, typeName)
			t = &vt
			return err
		})
		if err != nil {
			return nil, awserr.Newf("InvalidInstanceAttributeValue", "The instanceType attribute value '%s' is not valid.", typeName)
		}
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	if err := a.fleet.Modify(rq.ctx, rq.account.ID, id, t, userData); err != nil {
		return nil, err
	}
	return returnResult{true}, nil
}
