package ec2api

import (
	"errors"
	"strings"

	"github.com/koala-cloud/koala/cloudctl/internal/addresses"
	"github.com/koala-cloud/koala/cloudctl/internal/images"
	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/cloudctl/internal/keypairs"
	"github.com/koala-cloud/koala/cloudctl/internal/secgroups"
	"github.com/koala-cloud/koala/cloudctl/internal/snapshots"
	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/cloudctl/internal/volumes"
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/ec2query"
	"github.com/koala-cloud/koala/pkg/store"
)

// resourceTypes maps ID prefixes to EC2's resource type names, for the
// resources the cloud has.
var resourceTypes = map[string]string{
	"key": "key-pair",
	"sg":  "security-group",
	"ami": "image",
	"aki": "image",
	"ari": "image",
	"i":   "instance",

	"eipalloc": "elastic-ip",
	"vol":      "volume",
	"snap":     "snapshot",
}

func resourceType(id string) string {
	prefix, _, ok := strings.Cut(id, "-")
	if !ok {
		return ""
	}
	return resourceTypes[prefix]
}

// checkResource makes sure an account has the resource id.
func checkResource(tx *store.Tx, account, id string) error {
	switch resourceType(id) {
	case "key-pair":
		_, err := keypairs.Find(tx, account, id, true)
		return err
	case "security-group":
		_, err := secgroups.Find(tx, account, id)
		return err
	case "instance":
		_, err := instances.Owned(tx, account, id)
		return err
	case "volume":
		_, err := volumes.Owned(tx, account, id)
		return err
	case "snapshot":
		_, err := snapshots.Owned(tx, account, id)
		return err
	case "elastic-ip":
		_, err := addresses.ByAllocation(tx, account, id)
		return err
	case "image":
		img, err := images.Visible(tx, account, id)
		if err == nil && img.Owner != account {
			err = awserr.Newf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
		}
		if errors.Is(err, images.ErrNotFound) {
			err = awserr.Newf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
		}
		return err
	}
	return awserr.Newf("InvalidID", "The ID '%s' is not valid", id)
}

func (a *API) createTags(rq *request) (any, error) {
	ids, err := rq.p.List("ResourceId")
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, awserr.New("MissingParameter", "The request must contain the parameter resourceIdSet")
	}
	ts, err := readTags(rq.p, "Tag")
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, awserr.New("MissingParameter", "The request must contain the parameter tagSet")
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	err = a.update(func(tx *store.Tx) error {
		for _, id := range ids {
			if err := checkResource(tx, rq.account.ID, id); err != nil {
				return err
			}
			if err := tags.Add(tx, rq.account.ID, id, ts); err != nil {
				return err
			}
		}
		return nil
	})
	return returnResult{true}, err
}

func (a *API) deleteTags(rq *request) (any, error) {
	ids, err := rq.p.List("ResourceId")
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, awserr.New("MissingParameter", "The request must contain the parameter resourceIdSet")
	}
	items, err := rq.p.Structs("Tag")
	if err != nil {
		return nil, err
	}
	var keys []string
	var values []*string
	for _, it := range items {
		k, err := it.Required("Key")
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
		var v *string
		if it.Has("Value") {
			s := it.String("Value")
			v = &s
		}
		values = append(values, v)
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	err = a.update(func(tx *store.Tx) error {
		for _, id := range ids {
			if err := checkResource(tx, rq.account.ID, id); err != nil {
				return err
			}
			if err := tags.Remove(tx, rq.account.ID, id, keys, values); err != nil {
				return err
			}
		}
		return nil
	})
	return returnResult{true}, err
}

type tagItem struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"`
	Key          string `xml:"key"`
	Value        string `xml:"value"`
}

type describeTagsResult struct {
	Tags      []tagItem `xml:"tagSet>item"`
	NextToken string    `xml:"nextToken,omitempty"`
}

func (a *API) describeTags(rq *request) (any, error) {
	filters, err := rq.p.Filters()
	if err != nil {
		return nil, err
	}
	if err := checkFilters(filters, false, "key", "value", "resource-id", "resource-type"); err != nil {
		return nil, err
	}
	var all []tags.Tagged
	if err := a.view(func(tx *store.Tx) error {
		all, err = tags.All(tx, rq.account.ID)
		return err
	}); err != nil {
		return nil, err
	}
	var positions []string
	byPos := map[string]tagItem{}
	for _, t := range all {
		item := tagItem{t.ResourceID, resourceType(t.ResourceID), t.Key, t.Value}
		if !match(filters, attrs{"key": {t.Key}, "value": {t.Value}, "resource-id": {t.ResourceID}, "resource-type": {item.ResourceType}}, nil) {
			continue
		}
		pos := t.ResourceID + "\x00" + t.Key
		positions = append(positions, pos)
		byPos[pos] = item
	}
	page, next, err := a.tokens.Page(rq.p, positions, ec2query.Fingerprint(filters, "DescribeTags", rq.account.ID), 5, 1000)
	if err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	out := describeTagsResult{Tags: []tagItem{}, NextToken: next}
	for _, pos := range page {
		out.Tags = append(out.Tags, byPos[pos])
	}
	return out, nil
}
