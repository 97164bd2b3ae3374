package ec2api

import (
	"strings"

	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/ec2query"
	"github.com/koala-cloud/koala/pkg/store"
)

type metadataOptionsXML struct {
	State                   string `xml:"state"`
	HTTPTokens              string `xml:"httpTokens"`
	HTTPPutResponseHopLimit int    `xml:"httpPutResponseHopLimit"`
	HTTPEndpoint            string `xml:"httpEndpoint"`
	HTTPProtocolIpv6        string `xml:"httpProtocolIpv6"`
	InstanceMetadataTags    string `xml:"instanceMetadataTags"`
}

// metadataOptions renders an instance's options; a change takes effect
// with the next metadata request, so they are always "applied".
func metadataOptions(o instances.MetadataOptions) *metadataOptionsXML {
	o = o.Effective()
	return &metadataOptionsXML{State: "applied", HTTPTokens: o.HTTPTokens, HTTPPutResponseHopLimit: o.HopLimit,
		HTTPEndpoint: o.HTTPEndpoint, HTTPProtocolIpv6: "disabled", InstanceMetadataTags: "disabled"}
}

// readMetadataOptions reads HttpTokens, HttpEndpoint and
// HttpPutResponseHopLimit under prefix over base (what is not given
// stays). The IPv6 endpoint and instance tags in the metadata are not
// served: asking to enable them is refused.
func readMetadataOptions(p *ec2query.Params, prefix string, base instances.MetadataOptions) (instances.MetadataOptions, error) {
	o := base
	oneOf := func(name string, into *string, valid ...string) error {
		v := p.String(prefix + name)
		if v == "" {
			return nil
		}
		for _, ok := range valid {
			if v == ok {
				if into != nil {
					*into = v
				}
				return nil
			}
		}
		return awserr.Newf("InvalidParameterValue", "Value (%s) for parameter %s is invalid. Valid values: %s.", v, name, strings.Join(valid, ", "))
	}
	if err := oneOf("HttpTokens", &o.HTTPTokens, "optional", "required"); err != nil {
		return o, err
	}
	if err := oneOf("HttpEndpoint", &o.HTTPEndpoint, "enabled", "disabled"); err != nil {
		return o, err
	}
	if err := oneOf("HttpProtocolIpv6", nil, "disabled"); err != nil {
		return o, err
	}
	if err := oneOf("InstanceMetadataTags", nil, "disabled"); err != nil {
		return o, err
	}
	if p.Has(prefix + "HttpPutResponseHopLimit") {
		n, err := p.Int(prefix+"HttpPutResponseHopLimit", 0)
		if err != nil {
			return o, err
		}
		if n < 1 || n > 64 {
			return o, awserr.Newf("InvalidParameterValue", "Value (%d) for parameter HttpPutResponseHopLimit is invalid. Valid values: 1 to 64.", n)
		}
		o.HopLimit = n
	}
	return o, nil
}

type modifyMetadataOptionsResult struct {
	InstanceID string              `xml:"instanceId"`
	Options    *metadataOptionsXML `xml:"instanceMetadataOptions"`
}

func (a *API) modifyInstanceMetadataOptions(rq *request) (any, error) {
	p := rq.p
	id, err := p.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	if !instanceIDRE.MatchString(id) {
		return nil, awserr.Newf("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
	}
	// Read against the zero options to refuse bad values before ready;
	// the stored options are read in the transaction.
	if _, err := readMetadataOptions(p, "", instances.MetadataOptions{}); err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	var out instances.MetadataOptions
	err = a.update(func(tx *store.Tx) error {
		in, err := instances.Owned(tx, rq.account.ID, id)
		if err != nil {
			return err
		}
		if in.Final() || in.Desired == api.Terminated {
			return awserr.Newf("IncorrectInstanceState", "The instance '%s' is not in a state from which its metadata options can be modified.", id)
		}
		if in.Metadata, err = readMetadataOptions(p, "", in.Metadata); err != nil {
			return err
		}
		out = in.Metadata
		return instances.Put(tx, in)
	})
	if err != nil {
		return nil, err
	}
	return modifyMetadataOptionsResult{InstanceID: id, Options: metadataOptions(out)}, nil
}
