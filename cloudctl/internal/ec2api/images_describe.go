package ec2api

import (
	"strconv"
	"strings"

	"github.com/koala-cloud/koala/cloudctl/internal/images"
	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/ec2query"
	"github.com/koala-cloud/koala/pkg/store"
)

type stateReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type blockDeviceItem struct {
	DeviceName  string `xml:"deviceName"`
	VirtualName string `xml:"virtualName,omitempty"`
}

type imageItem struct {
	ImageID            string            `xml:"imageId"`
	ImageLocation      string            `xml:"imageLocation"`
	ImageState         string            `xml:"imageState"`
	ImageOwnerID       string            `xml:"imageOwnerId"`
	CreationDate       string            `xml:"creationDate"`
	IsPublic           bool              `xml:"isPublic"`
	Architecture       string            `xml:"architecture"`
	ImageType          string            `xml:"imageType"`
	KernelID           string            `xml:"kernelId,omitempty"`
	RamdiskID          string            `xml:"ramdiskId,omitempty"`
	PlatformDetails    string            `xml:"platformDetails"`
	UsageOperation     string            `xml:"usageOperation"`
	StateReason        *stateReason      `xml:"stateReason"`
	Name               string            `xml:"name"`
	Description        string            `xml:"description,omitempty"`
	RootDeviceType     string            `xml:"rootDeviceType"`
	RootDeviceName     string            `xml:"rootDeviceName,omitempty"`
	BlockDeviceMapping []blockDeviceItem `xml:"blockDeviceMapping>item"`
	VirtualizationType string            `xml:"virtualizationType"`
	Hypervisor         string            `xml:"hypervisor"`
	Tags               []xmlTag          `xml:"tagSet>item"`
}

type describeImagesResult struct {
	Images    []imageItem `xml:"imagesSet>item"`
	NextToken string      `xml:"nextToken,omitempty"`
}

func imageAttrs(img images.Image) attrs {
	return attrs{
		"architecture": {img.Architecture}, "image-id": {img.ID}, "image-type": {img.Type},
		"is-public": {strconv.FormatBool(img.Public)}, "name": {img.Name}, "owner-id": {img.Owner},
		"state": {img.State}, "manifest-location": {img.Location}, "kernel-id": {img.KernelID},
		"ramdisk-id": {img.RamdiskID}, "description": {img.Description}, "root-device-name": {img.RootDevice},
		"root-device-type": {"instance-store"}, "virtualization-type": {"paravirtual"}, "hypervisor": {"xen"},
		"platform-details": {"Linux/UNIX"},
	}
}

var imageFilters = []string{"architecture", "image-id", "image-type", "is-public", "name", "owner-id", "state",
	"manifest-location", "kernel-id", "ramdisk-id", "description", "root-device-name", "root-device-type",
	"virtualization-type", "hypervisor", "platform-details", "owner-alias", "block-device-mapping.device-name"}

func checkImageID(id string) error {
	prefix, rest, ok := strings.Cut(id, "-")
	if !ok || (prefix != "ami" && prefix != "aki" && prefix != "ari") || rest == "" {
		return awserr.Newf("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", id)
	}
	return nil
}

func (a *API) describeImages(rq *request) (any, error) {
	p := rq.p
	ids, err := p.List("ImageId")
	if err != nil {
		return nil, err
	}
	owners, err := p.List("Owner")
	if err != nil {
		return nil, err
	}
	executable, err := p.List("ExecutableBy")
	if err != nil {
		return nil, err
	}
	if _, err := p.Bool("IncludeDeprecated"); err != nil {
		return nil, err
	}
	if _, err := p.Bool("IncludeDisabled"); err != nil {
		return nil, err
	}
	filters, err := p.Filters()
	if err != nil {
		return nil, err
	}
	if err := checkFilters(filters, true, imageFilters...); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := checkImageID(id); err != nil {
			return nil, err
		}
	}
	me := rq.account.ID
	var chosen []images.Image
	byID := map[string][]tags.Tag{}
	err = a.view(func(tx *store.Tx) error {
		all, err := images.All(tx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := images.Visible(tx, me, id); err != nil {
				return awserr.Newf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
			}
		}
		want := map[string]bool{}
		for _, id := range ids {
			want[id] = true
		}
		for _, img := range all {
			if !img.CanLaunch(me) || (len(want) > 0 && !want[img.ID]) {
				continue
			}
			if !ownerMatches(img, owners, me) || !executableMatches(img, executable, me) {
				continue
			}
			ts, err := tags.Of(tx, img.Owner, img.ID)
			if err != nil {
				return err
			}
			if img.Owner != me {
				ts = nil // tags are the owner's
			}
			if match(filters, imageAttrs(img), ts) {
				chosen = append(chosen, img)
				byID[img.ID] = ts
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	order := make([]string, len(chosen))
	index := map[string]images.Image{}
	for i, img := range chosen {
		order[i] = img.ID
		index[img.ID] = img
	}
	page, next := order, ""
	if p.Has("MaxResults") || p.Has("NextToken") {
		if len(ids) > 0 {
			return nil, awserr.New("InvalidParameterCombination", "The parameter imageIdsSet cannot be used with the parameter maxResults")
		}
		fp := ec2query.Fingerprint(filters, append(append([]string{"DescribeImages", me, "o"}, owners...), append([]string{"x"}, executable...)...)...)
		if page, next, err = a.tokens.Page(p, order, fp, 5, 1000); err != nil {
			return nil, err
		}
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	out := describeImagesResult{Images: []imageItem{}, NextToken: next}
	for _, id := range page {
		out.Images = append(out.Images, imageXML(index[id], byID[id]))
	}
	return out, nil
}

func ownerMatches(img images.Image, owners []string, me string) bool {
	if len(owners) == 0 {
		return true
	}
	for _, o := range owners {
		if o == img.Owner || (o == "self" && img.Owner == me) {
			return true
		}
	}
	return false
}

func executableMatches(img images.Image, by []string, me string) bool {
	if len(by) == 0 {
		return true
	}
	for _, e := range by {
		switch {
		case e == "all" && img.Public:
			return true
		case e == "self" && (img.Owner == me || contains(img.LaunchAccounts, me)):
			return true
		case e != "all" && e != "self" && (img.Owner == e || contains(img.LaunchAccounts, e) || img.Public):
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func imageXML(img images.Image, ts []tags.Tag) imageItem {
	item := imageItem{
		ImageID: img.ID, ImageLocation: img.Location, ImageState: img.State, ImageOwnerID: img.Owner,
		CreationDate: ec2Time(img.Created), IsPublic: img.Public, Architecture: img.Architecture,
		ImageType: img.Type, KernelID: img.KernelID, RamdiskID: img.RamdiskID,
		PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances", Name: img.Name, Description: img.Description,
		RootDeviceType: "instance-store", RootDeviceName: img.RootDevice, BlockDeviceMapping: []blockDeviceItem{},
		VirtualizationType: "paravirtual", Hypervisor: "xen", Tags: tagSet(ts),
	}
	if img.ReasonCode != "" {
		item.StateReason = &stateReason{img.ReasonCode, img.ReasonMessage}
	}
	for _, m := range img.Mappings {
		item.BlockDeviceMapping = append(item.BlockDeviceMapping, blockDeviceItem{m.DeviceName, m.VirtualName})
	}
	return item
}

// ownedImage loads an image for a change by its owner: NotFound when the
// caller cannot see it, UnauthorizedOperation when it can but does not own
// it.
func ownedImage(tx *store.Tx, account, id string) (images.Image, error) {
	if err := checkImageID(id); err != nil {
		return images.Image{}, err
	}
	img, err := images.Visible(tx, account, id)
	if err != nil {
		return img, awserr.Newf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
	}
	if img.Owner != account {
		return img, awserr.Newf("AuthFailure", "Not authorized for image:%s", id)
	}
	return img, nil
}

func (a *API) deregisterImage(rq *request) (any, error) {
	id, err := rq.p.Required("ImageId")
	if err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	err = a.update(func(tx *store.Tx) error {
		img, err := ownedImage(tx, rq.account.ID, id)
		if err != nil {
			return err
		}
		img.State = images.Deregistered
		if err := images.Put(tx, img); err != nil {
			return err
		}
		return tags.Drop(tx, rq.account.ID, id)
	})
	return returnResult{true}, err
}

// permissionItem is one entry of a launch or create volume permission.
type permissionItem struct {
	UserID string `xml:"userId,omitempty"`
	Group  string `xml:"group,omitempty"`
}

type valueElem struct {
	Value string `xml:"value"`
}

type imageAttributeResult struct {
	ImageID            string             `xml:"imageId"`
	LaunchPermission   *[]permissionItem  `xml:"launchPermission>item"`
	Description        *valueElem         `xml:"description"`
	Kernel             *valueElem         `xml:"kernel"`
	Ramdisk            *valueElem         `xml:"ramdisk"`
	ProductCodes       *[]struct{}        `xml:"productCodes>item"`
	BlockDeviceMapping *[]blockDeviceItem `xml:"blockDeviceMapping>item"`
}

func (a *API) describeImageAttribute(rq *request) (any, error) {
	id, err := rq.p.Required("ImageId")
	if err != nil {
		return nil, err
	}
	attr, err := rq.p.Required("Attribute")
	if err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	var img images.Image
	err = a.view(func(tx *store.Tx) error {
		var err error
		if attr == "launchPermission" {
			img, err = ownedImage(tx, rq.account.ID, id)
			return err
		}
		if err := checkImageID(id); err != nil {
			return err
		}
		if img, err = images.Visible(tx, rq.account.ID, id); err != nil {
			return awserr.Newf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := imageAttributeResult{ImageID: img.ID}
	switch attr {
	case "launchPermission":
		perms := []permissionItem{}
		if img.Public {
			perms = append(perms, permissionItem{Group: "all"})
		}
		for _, acct := range img.LaunchAccounts {
			perms = append(perms, permissionItem{UserID: acct})
		}
		out.LaunchPermission = &perms
	case "description":
		out.Description = &valueElem{img.Description}
	case "kernel":
		out.Kernel = &valueElem{img.KernelID}
	case "ramdisk":
		out.Ramdisk = &valueElem{img.RamdiskID}
	case "productCodes":
		out.ProductCodes = &[]struct{}{}
	case "blockDeviceMapping":
		bdm := []blockDeviceItem{}
		for _, m := range img.Mappings {
			bdm = append(bdm, blockDeviceItem{m.DeviceName, m.VirtualName})
		}
		out.BlockDeviceMapping = &bdm
	default:
		return nil, awserr.Newf("InvalidRequest", "The attribute '%s' is not supported for images", attr)
	}
	return out, nil
}

// permissionChanges reads the changes to a launch (image) or create
// volume (snapshot) permission in both of EC2's forms: Prefix.Add.N /
// Prefix.Remove.N structures of UserId or Group, or OperationType with
// UserId.N and UserGroup.N. what names the permission in messages.
func permissionChanges(p *ec2query.Params, prefix, what string) (add, remove []permissionItem, err error) {
	for _, side := range []struct {
		name string
		dst  *[]permissionItem
	}{{prefix + ".Add", &add}, {prefix + ".Remove", &remove}} {
		items, err := p.Structs(side.name)
		if err != nil {
			return nil, nil, err
		}
		for _, it := range items {
			*side.dst = append(*side.dst, permissionItem{UserID: it.String("UserId"), Group: it.String("Group")})
		}
	}
	users, err := p.List("UserId")
	if err != nil {
		return nil, nil, err
	}
	groups, err := p.List("UserGroup")
	if err != nil {
		return nil, nil, err
	}
	if len(users)+len(groups) > 0 {
		var dst *[]permissionItem
		switch p.String("OperationType") {
		case "add":
			dst = &add
		case "remove":
			dst = &remove
		default:
			return nil, nil, awserr.New("MissingParameter", "The request must contain the parameter operationType (add or remove)")
		}
		for _, u := range users {
			*dst = append(*dst, permissionItem{UserID: u})
		}
		for _, g := range groups {
			*dst = append(*dst, permissionItem{Group: g})
		}
	}
	for _, it := range append(append([]permissionItem(nil), add...), remove...) {
		switch {
		case it.Group != "" && it.Group != "all":
			return nil, nil, awserr.Newf("InvalidParameterValue", "Invalid %s group '%s': only 'all' is supported", what, it.Group)
		case it.Group == "" && len(it.UserID) != 12:
			return nil, nil, awserr.Newf("InvalidParameterValue", "Invalid %s user ID '%s': expecting a 12-digit account ID", what, it.UserID)
		}
	}
	return add, remove, nil
}

func (a *API) modifyImageAttribute(rq *request) (any, error) {
	p := rq.p
	id, err := p.Required("ImageId")
	if err != nil {
		return nil, err
	}
	attr := p.String("Attribute")
	add, remove, err := permissionChanges(p, "LaunchPermission", "launch permission")
	if err != nil {
		return nil, err
	}
	desc, hasDesc := p.String("Description.Value"), p.Has("Description.Value")
	value := p.String("Value")
	if attr == "description" && !hasDesc && p.Has("Value") {
		desc, hasDesc = value, true
	}
	if len(add)+len(remove) == 0 && !hasDesc {
		return nil, awserr.New("MissingParameter", "The request must contain a launch permission change or a description")
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	err = a.update(func(tx *store.Tx) error {
		img, err := ownedImage(tx, rq.account.ID, id)
		if err != nil {
			return err
		}
		for _, it := range add {
			if it.Group == "all" {
				img.Public = true
			} else if !contains(img.LaunchAccounts, it.UserID) {
				img.LaunchAccounts = append(img.LaunchAccounts, it.UserID)
			}
		}
		for _, it := range remove {
			if it.Group == "all" {
				img.Public = false
				continue
			}
			kept := img.LaunchAccounts[:0]
			for _, acct := range img.LaunchAccounts {
				if acct != it.UserID {
					kept = append(kept, acct)
				}
			}
			img.LaunchAccounts = kept
		}
		if hasDesc {
			img.Description = desc
		}
		return images.Put(tx, img)
	})
	return returnResult{true}, err
}

func (a *API) resetImageAttribute(rq *request) (any, error) {
	id, err := rq.p.Required("ImageId")
	if err != nil {
		return nil, err
	}
	attr, err := rq.p.Required("Attribute")
	if err != nil {
		return nil, err
	}
	if attr != "launchPermission" {
		return nil, awserr.Newf("InvalidRequest", "The attribute '%s' cannot be reset; only launchPermission", attr)
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	err = a.update(func(tx *store.Tx) error {
		img, err := ownedImage(tx, rq.account.ID, id)
		if err != nil {
			return err
		}
		img.Public, img.LaunchAccounts = false, nil
		return images.Put(tx, img)
	})
	return returnResult{true}, err
}
