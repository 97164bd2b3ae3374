package ec2api

import (
	"fmt"
	"strings"

	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/ec2query"
)

// attrs are a resource's values for each filter name it supports.
type attrs map[string][]string

// checkFilters refuses a filter name the action does not support; tag:*,
// tag-key and tag-value are supported wherever resources carry tags.
func checkFilters(filters []ec2query.Filter, tagged bool, names ...string) error {
	for _, f := range filters {
		ok := false
		for _, n := range names {
			ok = ok || f.Name == n
		}
		if tagged && (f.Name == "tag-key" || f.Name == "tag-value" || (strings.HasPrefix(f.Name, "tag:") && len(f.Name) > 4)) {
			ok = true
		}
		if !ok {
			return awserr.New("InvalidParameterValue", fmt.Sprintf("The filter '%s' is invalid", f.Name))
		}
	}
	return nil
}

// match reports whether a resource with attributes a and tags ts passes
// every filter: each filter must match one of its values (wildcards * and
// ?) against one of the resource's values.
func match(filters []ec2query.Filter, a attrs, ts []tags.Tag) bool {
	for _, f := range filters {
		var have []string
		switch {
		case f.Name == "tag-key":
			for _, t := range ts {
				have = append(have, t.Key)
			}
		case f.Name == "tag-value":
			for _, t := range ts {
				have = append(have, t.Value)
			}
		case strings.HasPrefix(f.Name, "tag:"):
			for _, t := range ts {
				if t.Key == f.Name[4:] {
					have = append(have, t.Value)
				}
			}
		default:
			have = a[f.Name]
		}
		if !anyMatch(f.Values, have) {
			return false
		}
	}
	return true
}

func anyMatch(patterns, values []string) bool {
	for _, p := range patterns {
		for _, v := range values {
			if ec2query.Match(p, v) {
				return true
			}
		}
	}
	return false
}

// xmlTag is a tag in a tagSet.
type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func tagSet(ts []tags.Tag) []xmlTag {
	out := make([]xmlTag, 0, len(ts))
	for _, t := range ts {
		out = append(out, xmlTag{t.Key, t.Value})
	}
	return out
}

// readTags reads a list of Key/Value structs (Tag.N.Key, Tag.N.Value).
func readTags(p *ec2query.Params, prefix string) ([]tags.Tag, error) {
	items, err := p.Structs(prefix)
	if err != nil {
		return nil, err
	}
	out := make([]tags.Tag, 0, len(items))
	for _, it := range items {
		k := it.String("Key")
		if !it.Has("Key") {
			return nil, awserr.New("InvalidParameterValue", "Tag keys must not be empty")
		}
		out = append(out, tags.Tag{Key: k, Value: it.String("Value")})
	}
	return out, tags.Check(out)
}

// tagSpecs reads TagSpecification.N for a create call of resourceType.
func tagSpecs(p *ec2query.Params, resourceType string) ([]tags.Tag, error) {
	specs, err := p.Structs("TagSpecification")
	if err != nil {
		return nil, err
	}
	var out []tags.Tag
	for _, s := range specs {
		rt, err := s.Required("ResourceType")
		if err != nil {
			return nil, err
		}
		if rt != resourceType {
			return nil, awserr.Newf("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt)
		}
		ts, err := readTags(s, "Tag")
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	if len(out) > tags.MaxTags {
		return nil, awserr.Newf("TagLimitExceeded", "The maximum number of Tags for a resource has been reached.")
	}
	return out, nil
}
