package ec2api

import (
	"slices"
	"sort"
	"strconv"

	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/cloudctl/internal/snapshots"
	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/cloudctl/internal/volumes"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/ec2query"
	"github.com/koala-cloud/koala/pkg/ident"
	"github.com/koala-cloud/koala/pkg/store"
)

// Volumes drives the volumes' ebs daemons: Kick has it look at the
// records soon.
type Volumes interface {
	Kick()
}

func (a *API) kickVolumes() {
	if a.volumes != nil {
		a.volumes.Kick()
	}
}

type volumeAttachmentItem struct {
	VolumeID            string        `xml:"volumeId"`
	InstanceID          string        `xml:"instanceId"`
	Device              string        `xml:"device"`
	Status              string        `xml:"status"`
	AttachTime          ec2query.Time `xml:"attachTime"`
	DeleteOnTermination bool          `xml:"deleteOnTermination"`
}

type volumeItem struct {
	VolumeID           string                 `xml:"volumeId"`
	Size               int                    `xml:"size"`
	SnapshotID         string                 `xml:"snapshotId"`
	AvailabilityZone   string                 `xml:"availabilityZone"`
	Status             string                 `xml:"status"`
	CreateTime         ec2query.Time          `xml:"createTime"`
	Attachments        []volumeAttachmentItem `xml:"attachmentSet>item"`
	Tags               []xmlTag               `xml:"tagSet>item,omitempty"`
	VolumeType         string                 `xml:"volumeType"`
	Encrypted          bool                   `xml:"encrypted"`
	MultiAttachEnabled bool                   `xml:"multiAttachEnabled"`
}

func volumeXML(v volumes.Volume, ts []tags.Tag) volumeItem {
	item := volumeItem{VolumeID: v.ID, Size: v.SizeGiB, SnapshotID: v.SnapshotID, AvailabilityZone: v.Zone, Status: v.State,
		CreateTime: ec2query.Time{Time: v.Created}, Attachments: []volumeAttachmentItem{}, Tags: tagSet(ts), VolumeType: v.Type}
	if at := v.Attachment; at != nil {
		item.Attachments = append(item.Attachments, volumeAttachmentItem{VolumeID: v.ID, InstanceID: at.Instance,
			Device: at.Device, Status: at.State, AttachTime: ec2query.Time{Time: at.Time}})
	}
	return item
}

func (a *API) createVolume(rq *request) (any, error) {
	p := rq.p
	zone, err := p.Required("AvailabilityZone")
	if err != nil {
		return nil, err
	}
	size, err := p.Int("Size", 0)
	if err != nil {
		return nil, err
	}
	snap := p.String("SnapshotId")
	if snap != "" {
		if err := snapshotRef(snap); err != nil {
			return nil, err
		}
	}
	switch {
	case !p.Has("Size") && snap == "":
		return nil, awserr.New("MissingParameter", "The request must contain the parameter size/snapshot")
	case p.Has("Size") && (size < 1 || size > volumes.MaxSizeGiB):
		return nil, awserr.Newf("InvalidParameterValue", "Volume of %dGiB is too large or too small; the size must be 1 to %d GiB.", size, volumes.MaxSizeGiB)
	}
	typ := p.String("VolumeType")
	if typ == "" {
		typ = "gp2"
	}
	if !slices.Contains(volumes.Types, typ) {
		return nil, awserr.Newf("InvalidParameterValue", "Value (%s) for parameter volumeType is invalid. Valid values are %v.", typ, volumes.Types)
	}
	for _, flag := range []string{"Encrypted", "MultiAttachEnabled"} {
		on, err := p.Bool(flag)
		if err != nil {
			return nil, err
		}
		if on {
			return nil, awserr.Newf("InvalidParameterValue", "%s volumes are not supported by this cloud.", flag)
		}
	}
	p.Skip("Iops", "Throughput", "KmsKeyId")
	ts, err := tagSpecs(p, "volume")
	if err != nil {
		return nil, err
	}
	token := p.String("ClientToken")
	if snap != "" {
		// Refuse a snapshot the caller may not use before a DryRun
		// succeeds; the create checks again.
		err := a.view(func(tx *store.Tx) error { _, _, err := snapshots.Restore(tx, rq.account.ID, snap, size); return err })
		if err != nil {
			return nil, err
		}
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	out, err := idempotent(rq, token, func() (volumeItem, error) {
		now := a.cfg.Now().UTC()
		v := volumes.Volume{ID: ident.Resource("vol"), Owner: rq.account.ID, Zone: zone, SizeGiB: size, Type: typ,
			SnapshotID: snap, State: volumes.Creating, Created: now, Since: now, ClientToken: token}
		err := a.update(func(tx *store.Tx) error {
			cl, err := clusters.Get(tx, zone)
			if err != nil || cl.EBS == "" {
				return awserr.Newf("InvalidParameterValue", "Invalid availability zone: [%s]", zone)
			}
			if snap != "" {
				if _, v.SizeGiB, err = snapshots.Restore(tx, rq.account.ID, snap, size); err != nil {
					return err
				}
			}
			if err := volumes.Put(tx, v); err != nil {
				return err
			}
			return tags.Add(tx, rq.account.ID, v.ID, ts)
		})
		return volumeXML(v, ts), err
	})
	if err != nil {
		return nil, err
	}
	a.kickVolumes()
	return out, nil
}

func (a *API) deleteVolume(rq *request) (any, error) {
	id, err := rq.p.Required("VolumeId")
	if err != nil {
		return nil, err
	}
	if err := volumes.CheckID(id); err != nil {
		return nil, awserr.Newf("InvalidVolumeID.Malformed", "Invalid id: \"%s\" (expecting \"vol-...\")", id)
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	err = a.update(func(tx *store.Tx) error {
		_, err := volumes.MarkDeleting(tx, rq.account.ID, id, a.cfg.Now())
		return err
	})
	if err != nil {
		return nil, err
	}
	a.kickVolumes()
	return returnResult{true}, nil
}

type describeVolumesResult struct {
	Volumes   []volumeItem `xml:"volumeSet>item"`
	NextToken string       `xml:"nextToken,omitempty"`
}

// volumeFilters are DescribeVolumes' filters.
var volumeFilters = []string{"attachment.attach-time", "attachment.delete-on-termination", "attachment.device",
	"attachment.instance-id", "attachment.status", "availability-zone", "create-time", "encrypted", "size",
	"snapshot-id", "status", "volume-id", "volume-type", "multi-attach-enabled", "fast-restored"}

func volumeAttrs(v volumes.Volume) attrs {
	at := attrs{"availability-zone": {v.Zone}, "create-time": {v.Created.UTC().Format(ec2query.TimeLayout)},
		"encrypted": {"false"}, "size": {strconv.Itoa(v.SizeGiB)}, "snapshot-id": {v.SnapshotID}, "status": {v.State},
		"volume-id": {v.ID}, "volume-type": {v.Type}, "multi-attach-enabled": {"false"}, "fast-restored": {"false"}}
	if a := v.Attachment; a != nil {
		at["attachment.attach-time"] = []string{a.Time.UTC().Format(ec2query.TimeLayout)}
		at["attachment.delete-on-termination"] = []string{"false"}
		at["attachment.device"] = []string{a.Device}
		at["attachment.instance-id"] = []string{a.Instance}
		at["attachment.status"] = []string{a.State}
	}
	return at
}

// selectVolumes returns the account's volumes that ids name (all when
// none) and filters match, by ID, with their tags.
func (a *API) selectVolumes(rq *request, ids []string, filters []ec2query.Filter) ([]volumes.Volume, map[string][]tags.Tag, error) {
	for _, id := range ids {
		if err := volumes.CheckID(id); err != nil {
			return nil, nil, awserr.Newf("InvalidVolumeID.Malformed", "Invalid id: \"%s\" (expecting \"vol-...\")", id)
		}
	}
	var out []volumes.Volume
	tagsOf := map[string][]tags.Tag{}
	err := a.view(func(tx *store.Tx) error {
		var chosen []volumes.Volume
		if len(ids) == 0 {
			all, err := volumes.All(tx, rq.account.ID)
			if err != nil {
				return err
			}
			chosen = all
		}
		for _, id := range ids {
			v, err := volumes.Owned(tx, rq.account.ID, id)
			if err != nil {
				return err
			}
			chosen = append(chosen, v)
		}
		seen := map[string]bool{}
		for _, v := range chosen {
			if seen[v.ID] {
				continue
			}
			seen[v.ID] = true
			ts, err := tags.Of(tx, rq.account.ID, v.ID)
			if err != nil {
				return err
			}
			if match(filters, volumeAttrs(v), ts) {
				out = append(out, v)
				tagsOf[v.ID] = ts
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, tagsOf, err
}

func (a *API) describeVolumes(rq *request) (any, error) {
	p := rq.p
	ids, err := p.List("VolumeId")
	if err != nil {
		return nil, err
	}
	filters, err := p.Filters()
	if err != nil {
		return nil, err
	}
	if err := checkFilters(filters, true, volumeFilters...); err != nil {
		return nil, err
	}
	paged := p.Has("MaxResults") || p.Has("NextToken")
	if paged && len(ids) > 0 {
		return nil, awserr.New("InvalidParameterCombination", "The parameter volumesSet cannot be used with the parameter maxResults")
	}
	chosen, tagsOf, err := a.selectVolumes(rq, ids, filters)
	if err != nil {
		return nil, err
	}
	order := make([]string, len(chosen))
	byID := map[string]volumes.Volume{}
	for i, v := range chosen {
		order[i], byID[v.ID] = v.ID, v
	}
	next := ""
	if paged {
		if order, next, err = a.tokens.Page(p, order, ec2query.Fingerprint(filters, "DescribeVolumes", rq.account.ID), 5, 500); err != nil {
			return nil, err
		}
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	out := describeVolumesResult{Volumes: []volumeItem{}, NextToken: next}
	for _, id := range order {
		out.Volumes = append(out.Volumes, volumeXML(byID[id], tagsOf[id]))
	}
	return out, nil
}

type volumeStatusDetail struct {
	Name   string `xml:"name"`
	Status string `xml:"status"`
}

type volumeStatusItem struct {
	VolumeID         string `xml:"volumeId"`
	AvailabilityZone string `xml:"availabilityZone"`
	VolumeStatus     struct {
		Status  string               `xml:"status"`
		Details []volumeStatusDetail `xml:"details>item"`
	} `xml:"volumeStatus"`
	Events  []struct{} `xml:"eventsSet>item"`
	Actions []struct{} `xml:"actionsSet>item"`
}

type describeVolumeStatusResult struct {
	Statuses  []volumeStatusItem `xml:"volumeStatusSet>item"`
	NextToken string             `xml:"nextToken,omitempty"`
}

func (a *API) describeVolumeStatus(rq *request) (any, error) {
	p := rq.p
	ids, err := p.List("VolumeId")
	if err != nil {
		return nil, err
	}
	filters, err := p.Filters()
	if err != nil {
		return nil, err
	}
	if err := checkFilters(filters, false, "availability-zone", "volume-status.status", "volume-status.details-name",
		"volume-status.details-status"); err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	chosen, _, err := a.selectVolumes(rq, ids, nil)
	if err != nil {
		return nil, err
	}
	out := describeVolumeStatusResult{Statuses: []volumeStatusItem{}}
	for _, v := range chosen {
		status, io := "ok", "passed"
		switch v.State {
		case volumes.Error:
			status, io = "impaired", "failed"
		case volumes.Creating, volumes.Deleting:
			status, io = "insufficient-data", "insufficient-data"
		}
		item := volumeStatusItem{VolumeID: v.ID, AvailabilityZone: v.Zone}
		item.VolumeStatus.Status = status
		item.VolumeStatus.Details = []volumeStatusDetail{{"io-enabled", io}, {"io-performance", "not-applicable"}}
		at := attrs{"availability-zone": {v.Zone}, "volume-status.status": {status},
			"volume-status.details-name": {"io-enabled", "io-performance"}, "volume-status.details-status": {io, "not-applicable"}}
		if match(filters, at, nil) {
			out.Statuses = append(out.Statuses, item)
		}
	}
	return out, nil
}

// attachmentResult is AttachVolume's and DetachVolume's reply.
type attachmentResult volumeAttachmentItem

func attachmentXML(v volumes.Volume) attachmentResult {
	at := v.Attachment
	return attachmentResult{VolumeID: v.ID, InstanceID: at.Instance, Device: at.Device, Status: at.State,
		AttachTime: ec2query.Time{Time: at.Time}}
}

// volumeRef reads a required, well-formed VolumeId.
func volumeRef(p *ec2query.Params) (string, error) {
	id, err := p.Required("VolumeId")
	if err != nil {
		return "", err
	}
	if err := volumes.CheckID(id); err != nil {
		return "", awserr.Newf("InvalidVolumeID.Malformed", "Invalid id: \"%s\" (expecting \"vol-...\")", id)
	}
	return id, nil
}

func (a *API) attachVolume(rq *request) (any, error) {
	p := rq.p
	id, err := volumeRef(p)
	if err != nil {
		return nil, err
	}
	instance, err := p.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	if !instanceIDRE.MatchString(instance) {
		return nil, awserr.Newf("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", instance)
	}
	device, err := p.Required("Device")
	if err != nil {
		return nil, err
	}
	if _, ok := volumes.GuestDevice(device); !ok {
		return nil, awserr.Newf("InvalidParameterValue", "Value (%s) for parameter device is invalid. %s is not a valid EBS device name.", device, device)
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	var v volumes.Volume
	err = a.update(func(tx *store.Tx) error {
		in, err := instances.Owned(tx, rq.account.ID, instance)
		if err != nil {
			return err
		}
		vol, err := volumes.Owned(tx, rq.account.ID, id)
		if err != nil {
			return err
		}
		if in.State != api.Running || in.Desired != api.Running {
			return awserr.Newf("IncorrectInstanceState", "Instance '%s' is not 'running'.", instance)
		}
		if vol.Zone != in.Zone {
			return awserr.Newf("InvalidVolume.ZoneMismatch", "The volume '%s' is not in the same availability zone as instance '%s'", id, instance)
		}
		v, err = volumes.Attach(tx, rq.account.ID, id, instance, device, a.cfg.Now())
		return err
	})
	if err != nil {
		return nil, err
	}
	a.kickVolumes()
	return attachmentXML(v), nil
}

func (a *API) detachVolume(rq *request) (any, error) {
	p := rq.p
	id, err := volumeRef(p)
	if err != nil {
		return nil, err
	}
	instance, device := p.String("InstanceId"), p.String("Device")
	force, err := p.Bool("Force")
	if err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	var v volumes.Volume
	err = a.update(func(tx *store.Tx) error {
		var err error
		v, err = volumes.MarkDetaching(tx, rq.account.ID, id, instance, device, force, a.cfg.Now())
		return err
	})
	if err != nil {
		return nil, err
	}
	a.kickVolumes()
	return attachmentXML(v), nil
}
