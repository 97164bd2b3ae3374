package ec2api

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/koala-cloud/koala/cloudctl/internal/snapshots"
	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/ec2query"
	"github.com/koala-cloud/koala/pkg/store"
)

// Snapshots drives the making and deleting of snapshots: Kick has it look
// at the records soon.
type Snapshots interface {
	Kick()
}

func (a *API) kickSnapshots() {
	if a.snapshots != nil {
		a.snapshots.Kick()
	}
}

// maxSnapshotDescription is EC2's limit on a snapshot's description.
const maxSnapshotDescription = 255

// snapshotItem is a snapshot as EC2 describes it, and CreateSnapshot's
// reply.
type snapshotItem struct {
	SnapshotID    string        `xml:"snapshotId"`
	VolumeID      string        `xml:"volumeId"`
	Status        string        `xml:"status"`
	StatusMessage string        `xml:"statusMessage,omitempty"`
	StartTime     ec2query.Time `xml:"startTime"`
	Progress      string        `xml:"progress"`
	OwnerID       string        `xml:"ownerId"`
	VolumeSize    int           `xml:"volumeSize"`
	Description   string        `xml:"description"`
	Encrypted     bool          `xml:"encrypted"`
	StorageTier   string        `xml:"storageTier"`
	Tags          []xmlTag      `xml:"tagSet>item"`
}

func progress(s snapshots.Snapshot) string { return strconv.Itoa(s.Progress) + "%" }

func snapshotXML(s snapshots.Snapshot, ts []tags.Tag) snapshotItem {
	return snapshotItem{SnapshotID: s.ID, VolumeID: s.VolumeID, Status: s.State, StatusMessage: s.StateMessage,
		StartTime: ec2query.Time{Time: s.StartTime}, Progress: progress(s), OwnerID: s.Owner, VolumeSize: s.VolumeSize,
		Description: s.Description, StorageTier: "standard", Tags: tagSet(ts)}
}

// snapshotRef checks a snapshot ID's form.
func snapshotRef(id string) error {
	if snapshots.CheckID(id) != nil {
		return awserr.Newf("InvalidSnapshotID.Malformed", "Invalid id: \"%s\" (expecting \"snap-...\")", id)
	}
	return nil
}

// requiredSnapshot reads a required, well-formed SnapshotId.
func requiredSnapshot(p *ec2query.Params) (string, error) {
	id, err := p.Required("SnapshotId")
	if err != nil {
		return "", err
	}
	return id, snapshotRef(id)
}

func (a *API) createSnapshot(rq *request) (any, error) {
	p := rq.p
	vol, err := volumeRef(p)
	if err != nil {
		return nil, err
	}
	desc := p.String("Description")
	if utf8.RuneCountInString(desc) > maxSnapshotDescription {
		return nil, awserr.Newf("InvalidParameterValue", "Value for parameter description is invalid: longer than %d characters.", maxSnapshotDescription)
	}
	ts, err := tagSpecs(p, "snapshot")
	if err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	var s snapshots.Snapshot
	err = a.update(func(tx *store.Tx) error {
		var err error
		if s, err = snapshots.Create(tx, rq.account.ID, vol, desc, a.cfg.Now()); err != nil {
			return err
		}
		return tags.Add(tx, rq.account.ID, s.ID, ts)
	})
	if err != nil {
		return nil, err
	}
	a.kickSnapshots()
	return snapshotXML(s, ts), nil
}

func (a *API) deleteSnapshot(rq *request) (any, error) {
	id, err := requiredSnapshot(rq.p)
	if err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	err = a.update(func(tx *store.Tx) error {
		_, err := snapshots.MarkDeleting(tx, rq.account.ID, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	a.kickSnapshots()
	return returnResult{true}, nil
}

type describeSnapshotsResult struct {
	Snapshots []snapshotItem `xml:"snapshotSet>item"`
	NextToken string         `xml:"nextToken,omitempty"`
}

// snapshotFilters are DescribeSnapshots' filters (and tag:*, tag-key,
// tag-value).
var snapshotFilters = []string{"description", "encrypted", "owner-alias", "owner-id", "progress", "snapshot-id",
	"start-time", "status", "storage-tier", "volume-id", "volume-size"}

func snapshotAttrs(s snapshots.Snapshot) attrs {
	return attrs{"description": {s.Description}, "encrypted": {"false"}, "owner-id": {s.Owner}, "progress": {progress(s)},
		"snapshot-id": {s.ID}, "start-time": {s.StartTime.UTC().Format(ec2query.TimeLayout)}, "status": {s.State},
		"storage-tier": {"standard"}, "volume-id": {s.VolumeID}, "volume-size": {strconv.Itoa(s.VolumeSize)}}
}

// snapshotOwnerMatches applies Owner.N: "self" or account IDs (aliases
// such as "amazon" name no account of this cloud).
func snapshotOwnerMatches(s snapshots.Snapshot, owners []string, me string) bool {
	if len(owners) == 0 {
		return true
	}
	for _, o := range owners {
		if o == s.Owner || (o == "self" && s.Owner == me) {
			return true
		}
	}
	return false
}

// restorableByMatches applies RestorableBy.N: "self" for the snapshots
// the caller owns or was given the permission to, "all" for public ones,
// an account ID for those that account owns or was given the permission
// to.
func restorableByMatches(s snapshots.Snapshot, by []string, me string) bool {
	if len(by) == 0 {
		return true
	}
	perm := s.CreateVolumePermission
	for _, b := range by {
		switch b {
		case "self":
			b = me
		case "all":
			if perm.Public {
				return true
			}
			continue
		}
		if s.Owner == b || slices.Contains(perm.UserIDs, b) {
			return true
		}
	}
	return false
}

func (a *API) describeSnapshots(rq *request) (any, error) {
	p := rq.p
	ids, err := p.List("SnapshotId")
	if err != nil {
		return nil, err
	}
	owners, err := p.List("Owner")
	if err != nil {
		return nil, err
	}
	restorable, err := p.List("RestorableBy")
	if err != nil {
		return nil, err
	}
	filters, err := p.Filters()
	if err != nil {
		return nil, err
	}
	if err := checkFilters(filters, true, snapshotFilters...); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := snapshotRef(id); err != nil {
			return nil, err
		}
	}
	paged := p.Has("MaxResults") || p.Has("NextToken")
	if paged && len(ids) > 0 {
		return nil, awserr.New("InvalidParameterCombination", "The parameter snapshotSet cannot be used with the parameter maxResults")
	}
	me := rq.account.ID
	var chosen []snapshots.Snapshot
	tagsOf := map[string][]tags.Tag{}
	err = a.view(func(tx *store.Tx) error {
		for _, id := range ids {
			if _, err := snapshots.Visible(tx, me, id); err != nil {
				return err
			}
		}
		all, err := snapshots.All(tx)
		if err != nil {
			return err
		}
		for _, s := range all {
			if s.State == snapshots.Deleting || !snapshots.Restorable(s, me) || (len(ids) > 0 && !slices.Contains(ids, s.ID)) ||
				!snapshotOwnerMatches(s, owners, me) || !restorableByMatches(s, restorable, me) {
				continue
			}
			var ts []tags.Tag
			if s.Owner == me { // tags are the owner's
				if ts, err = tags.Of(tx, me, s.ID); err != nil {
					return err
				}
			}
			if match(filters, snapshotAttrs(s), ts) {
				chosen = append(chosen, s)
				tagsOf[s.ID] = ts
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(chosen, func(x, y snapshots.Snapshot) int { return strings.Compare(x.ID, y.ID) })
	order := make([]string, len(chosen))
	byID := map[string]snapshots.Snapshot{}
	for i, s := range chosen {
		order[i], byID[s.ID] = s.ID, s
	}
	next := ""
	if paged {
		fp := ec2query.Fingerprint(filters, append(append([]string{"DescribeSnapshots", me, "o"}, owners...), append([]string{"r"}, restorable...)...)...)
		if order, next, err = a.tokens.Page(p, order, fp, 5, 1000); err != nil {
			return nil, err
		}
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	out := describeSnapshotsResult{Snapshots: []snapshotItem{}, NextToken: next}
	for _, id := range order {
		out.Snapshots = append(out.Snapshots, snapshotXML(byID[id], tagsOf[id]))
	}
	return out, nil
}

type snapshotAttributeResult struct {
	SnapshotID             string            `xml:"snapshotId"`
	CreateVolumePermission *[]permissionItem `xml:"createVolumePermission>item"`
	ProductCodes           *[]struct{}       `xml:"productCodes>item"`
}

// Snapshot attributes, as EC2 names them.
const (
	attrCreateVolumePermission = "createVolumePermission"
	attrProductCodes           = "productCodes"
)

func badSnapshotAttribute(attr string) error {
	return awserr.Newf("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Valid values: createVolumePermission, productCodes", attr)
}

func (a *API) describeSnapshotAttribute(rq *request) (any, error) {
	id, err := requiredSnapshot(rq.p)
	if err != nil {
		return nil, err
	}
	attr, err := rq.p.Required("Attribute")
	if err != nil {
		return nil, err
	}
	if attr != attrCreateVolumePermission && attr != attrProductCodes {
		return nil, badSnapshotAttribute(attr)
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	var s snapshots.Snapshot
	err = a.view(func(tx *store.Tx) error {
		var err error
		if attr == attrCreateVolumePermission {
			s, err = snapshots.Owned(tx, rq.account.ID, id)
		} else {
			s, err = snapshots.Visible(tx, rq.account.ID, id)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := snapshotAttributeResult{SnapshotID: s.ID}
	if attr == attrProductCodes {
		out.ProductCodes = &[]struct{}{}
		return out, nil
	}
	perms := []permissionItem{}
	if s.CreateVolumePermission.Public {
		perms = append(perms, permissionItem{Group: "all"})
	}
	for _, acct := range s.CreateVolumePermission.UserIDs {
		perms = append(perms, permissionItem{UserID: acct})
	}
	out.CreateVolumePermission = &perms
	return out, nil
}

// permissionOf gathers permission entries into a Permission.
func permissionOf(items []permissionItem) snapshots.Permission {
	var p snapshots.Permission
	for _, it := range items {
		if it.Group == "all" {
			p.Public = true
		} else {
			p.UserIDs = append(p.UserIDs, it.UserID)
		}
	}
	return p
}

func (a *API) modifySnapshotAttribute(rq *request) (any, error) {
	p := rq.p
	id, err := requiredSnapshot(p)
	if err != nil {
		return nil, err
	}
	switch attr := p.String("Attribute"); attr {
	case "", attrCreateVolumePermission:
	case attrProductCodes:
		return nil, awserr.New("InvalidParameterValue", "The attribute productCodes of a snapshot cannot be modified.")
	default:
		return nil, badSnapshotAttribute(attr)
	}
	add, remove, err := permissionChanges(p, "CreateVolumePermission", "create volume permission")
	if err != nil {
		return nil, err
	}
	if len(add)+len(remove) == 0 {
		return nil, awserr.New("MissingParameter", "The request must contain a create volume permission to add or remove")
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	err = a.update(func(tx *store.Tx) error {
		_, err := snapshots.ChangePermission(tx, rq.account.ID, id, permissionOf(add), permissionOf(remove))
		return err
	})
	return returnResult{true}, err
}

func (a *API) resetSnapshotAttribute(rq *request) (any, error) {
	id, err := requiredSnapshot(rq.p)
	if err != nil {
		return nil, err
	}
	attr, err := rq.p.Required("Attribute")
	if err != nil {
		return nil, err
	}
	if attr != attrCreateVolumePermission {
		return nil, awserr.Newf("InvalidParameterValue", "The attribute '%s' cannot be reset; only createVolumePermission", attr)
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	err = a.update(func(tx *store.Tx) error {
		_, err := snapshots.ResetPermission(tx, rq.account.ID, id)
		return err
	})
	return returnResult{true}, err
}
