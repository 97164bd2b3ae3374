package acl

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
)

type xmlPolicy struct {
	XMLName xml.Name `xml:"AccessControlPolicy"`
	Owner   *struct {
		ID          string `xml:"ID"`
		DisplayName string `xml:"DisplayName"`
	} `xml:"Owner"`
	Grants *struct {
		Grant []struct {
			Grantee *struct {
				Type         string `xml:"type,attr"`
				ID           string `xml:"ID"`
				DisplayName  string `xml:"DisplayName"`
				URI          string `xml:"URI"`
				EmailAddress string `xml:"EmailAddress"`
			} `xml:"Grantee"`
			Permission string `xml:"Permission"`
		} `xml:"Grant"`
	} `xml:"AccessControlList"`
}

// maxPolicyBytes bounds an AccessControlPolicy body.
const maxPolicyBytes = 64 << 10

// Parse reads an AccessControlPolicy document for a resource owned by
// owner. Email grantees are resolved to canonical users.
func Parse(r io.Reader, owner Owner, res Resolver) (Policy, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxPolicyBytes+1))
	if err != nil {
		return Policy{}, fmt.Errorf("read policy: %w", err)
	}
	if len(data) > maxPolicyBytes {
		return Policy{}, fmt.Errorf("%w: document too large", ErrMalformed)
	}
	var x xmlPolicy
	if err := xml.Unmarshal(data, &x); err != nil {
		return Policy{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if x.Owner == nil || x.Owner.ID == "" || x.Grants == nil {
		return Policy{}, fmt.Errorf("%w: owner and access control list are required", ErrMalformed)
	}
	if x.Owner.ID != owner.ID {
		return Policy{}, ErrOwnerMismatch
	}
	p := Policy{Owner: owner}
	for _, g := range x.Grants.Grant {
		perm := Permission(g.Permission)
		if !perm.valid() || g.Grantee == nil {
			return Policy{}, fmt.Errorf("%w: grant needs a grantee and a valid permission", ErrMalformed)
		}
		var gr Grantee
		switch g.Grantee.Type {
		case TypeUser:
			if g.Grantee.ID == "" {
				return Policy{}, fmt.Errorf("%w: CanonicalUser grantee without ID", ErrMalformed)
			}
			var err error
			if gr, err = userGrantee(g.Grantee.ID, owner, res); err != nil {
				return Policy{}, err
			}
		case TypeGroup:
			switch g.Grantee.URI {
			case AllUsers, AuthenticatedUsers, LogDelivery:
			default:
				return Policy{}, fmt.Errorf("%w: unknown group %q", ErrMalformed, g.Grantee.URI)
			}
			gr = Grantee{Type: TypeGroup, URI: g.Grantee.URI}
		case TypeEmail:
			o, ok := res.ByEmail(g.Grantee.EmailAddress)
			if !ok {
				return Policy{}, fmt.Errorf("%w: %s", ErrUnresolvable, g.Grantee.EmailAddress)
			}
			gr = Grantee{Type: TypeUser, ID: o.ID, DisplayName: o.DisplayName}
		default:
			return Policy{}, fmt.Errorf("%w: grantee type %q", ErrMalformed, g.Grantee.Type)
		}
		p.Grants = append(p.Grants, Grant{gr, perm})
	}
	return p, nil
}

// Marshal returns p as S3's AccessControlPolicy document.
func (p Policy) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner>`)
	elem(&b, "ID", p.Owner.ID)
	elem(&b, "DisplayName", p.Owner.DisplayName)
	b.WriteString("</Owner><AccessControlList>")
	for _, g := range p.Grants {
		fmt.Fprintf(&b, `<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="%s">`, g.Grantee.Type)
		if g.Grantee.Type == TypeGroup {
			elem(&b, "URI", g.Grantee.URI)
		} else {
			elem(&b, "ID", g.Grantee.ID)
			elem(&b, "DisplayName", g.Grantee.DisplayName)
		}
		b.WriteString("</Grantee>")
		elem(&b, "Permission", string(g.Permission))
		b.WriteString("</Grant>")
	}
	b.WriteString("</AccessControlList></AccessControlPolicy>")
	return b.Bytes()
}

func elem(b *bytes.Buffer, name, value string) {
	b.WriteString("<" + name + ">")
	_ = xml.EscapeText(b, []byte(value))
	b.WriteString("</" + name + ">")
}
