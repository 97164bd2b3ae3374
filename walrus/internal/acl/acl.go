package acl

import (
	"errors"
	"fmt"
	"strings"
)

// Errors returned while building a policy.
var (
	ErrBadCanned        = errors.New("unknown canned acl")
	ErrMalformed        = errors.New("malformed access control policy")
	ErrBadGrantHeader   = errors.New("malformed grant header")
	ErrUnresolvable     = errors.New("grantee email address cannot be resolved")
	ErrUnknownGrantee   = errors.New("invalid id")
	ErrCannedAndGrants  = errors.New("specifying both canned acl and grant headers is not allowed")
	ErrOwnerMismatch    = errors.New("acl owner is not the resource owner")
	ErrUnknownPermisson = errors.New("unknown permission")
)

// Permission is an S3 ACL permission.
type Permission string

// The S3 permissions.
const (
	Read        Permission = "READ"
	Write       Permission = "WRITE"
	ReadACP     Permission = "READ_ACP"
	WriteACP    Permission = "WRITE_ACP"
	FullControl Permission = "FULL_CONTROL"
)

func (p Permission) valid() bool {
	switch p {
	case Read, Write, ReadACP, WriteACP, FullControl:
		return true
	}
	return false
}

// Group URIs S3 defines.
const (
	AllUsers           = "http://acs.amazonaws.com/groups/global/AllUsers"
	AuthenticatedUsers = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
	LogDelivery        = "http://acs.amazonaws.com/groups/s3/LogDelivery"
)

// ExecReader is the canonical user ID Amazon shows for EC2 in an
// aws-exec-read ACL: the principal that reads bundled images on behalf of
// the cloud.
const ExecReader = "6aa5a366c34c1cbe25dc49211496e913e0351eb0e8c37aa3477e40942ec6b97c"

// ExecReaderName is ExecReader's display name in ACL documents.
const ExecReaderName = "za-team"

// Owner identifies the account that owns a bucket or object.
type Owner struct {
	ID          string `json:"id"` // canonical user ID
	DisplayName string `json:"name,omitempty"`
}

// Grantee types.
const (
	TypeUser  = "CanonicalUser"
	TypeGroup = "Group"
	TypeEmail = "AmazonCustomerByEmail"
)

// Grantee is who a grant is for: a canonical user (ID) or a group (URI).
// Email grantees are resolved to canonical users when the policy is set.
type Grantee struct {
	Type        string `json:"type"`
	ID          string `json:"id,omitempty"`
	DisplayName string `json:"name,omitempty"`
	URI         string `json:"uri,omitempty"`
}

// Grant gives a grantee one permission.
type Grant struct {
	Grantee    Grantee    `json:"grantee"`
	Permission Permission `json:"perm"`
}

// Policy is an owner and its grants.
type Policy struct {
	Owner  Owner   `json:"owner"`
	Grants []Grant `json:"grants"`
}

// Identity is who asks: nil for an anonymous request.
type Identity struct {
	CanonicalID string
	DisplayName string
	// Exec marks the cloud's own image reader, which holds the rights that
	// aws-exec-read grants to EC2.
	Exec bool
}

// Allows reports whether id holds perm on a resource with policy p. The
// resource's owner holds every permission.
func (p Policy) Allows(id *Identity, perm Permission) bool {
	if id != nil && id.CanonicalID != "" && id.CanonicalID == p.Owner.ID {
		return true
	}
	for _, g := range p.Grants {
		if g.Permission != perm && g.Permission != FullControl {
			continue
		}
		if g.Grantee.matches(id) {
			return true
		}
	}
	return false
}

func (g Grantee) matches(id *Identity) bool {
	switch g.Type {
	case TypeGroup:
		switch g.URI {
		case AllUsers:
			return true
		case AuthenticatedUsers:
			return id != nil
		}
	case TypeUser:
		if id == nil {
			return false
		}
		return g.ID == id.CanonicalID || (id.Exec && g.ID == ExecReader)
	}
	return false
}

// Canned returns the policy a canned ACL name stands for. bucketOwner is
// the owner of the bucket holding the resource (the same as owner for a
// bucket); it matters for bucket-owner-read and bucket-owner-full-control.
func Canned(name string, owner, bucketOwner Owner) (Policy, error) {
	p := Policy{Owner: owner, Grants: []Grant{userGrant(owner, FullControl)}}
	group := func(uri string, perms ...Permission) {
		for _, perm := range perms {
			p.Grants = append(p.Grants, Grant{Grantee{Type: TypeGroup, URI: uri}, perm})
		}
	}
	switch name {
	case "", "private":
	case "public-read":
		group(AllUsers, Read)
	case "public-read-write":
		group(AllUsers, Read, Write)
	case "authenticated-read":
		group(AuthenticatedUsers, Read)
	case "aws-exec-read":
		p.Grants = append(p.Grants, userGrant(Owner{ID: ExecReader, DisplayName: ExecReaderName}, Read))
	case "bucket-owner-read":
		if bucketOwner.ID != owner.ID {
			p.Grants = append(p.Grants, userGrant(bucketOwner, Read))
		}
	case "bucket-owner-full-control":
		if bucketOwner.ID != owner.ID {
			p.Grants = append(p.Grants, userGrant(bucketOwner, FullControl))
		}
	case "log-delivery-write":
		group(LogDelivery, Write, ReadACP)
	default:
		return Policy{}, fmt.Errorf("%w: %q", ErrBadCanned, name)
	}
	return p, nil
}

func userGrant(o Owner, perm Permission) Grant {
	return Grant{Grantee{Type: TypeUser, ID: o.ID, DisplayName: o.DisplayName}, perm}
}

// userGrantee names the account with canonical ID id, which must exist
// (or be EC2's image reader).
func userGrantee(id string, owner Owner, res Resolver) (Grantee, error) {
	switch {
	case id == owner.ID:
		return Grantee{Type: TypeUser, ID: id, DisplayName: owner.DisplayName}, nil
	case id == ExecReader:
		return Grantee{Type: TypeUser, ID: id, DisplayName: ExecReaderName}, nil
	}
	o, ok := res.ByID(id)
	if !ok {
		return Grantee{}, fmt.Errorf("%w: %q", ErrUnknownGrantee, id)
	}
	return Grantee{Type: TypeUser, ID: id, DisplayName: o.DisplayName}, nil
}

// Resolver finds accounts for grants that name them.
type Resolver interface {
	// ByEmail returns the owner whose account has the email address.
	ByEmail(email string) (Owner, bool)
	// ByID returns the owner with the canonical user ID.
	ByID(id string) (Owner, bool)
}

// GrantHeaders maps the x-amz-grant-* header names to their permissions.
var GrantHeaders = []struct {
	Header     string
	Permission Permission
}{
	{"X-Amz-Grant-Read", Read},
	{"X-Amz-Grant-Write", Write},
	{"X-Amz-Grant-Read-Acp", ReadACP},
	{"X-Amz-Grant-Write-Acp", WriteACP},
	{"X-Amz-Grant-Full-Control", FullControl},
}

// FromGrantHeader adds to p the grants of one x-amz-grant-* header value:
// a comma-separated list of id="...", uri="..." or emailAddress="...".
func FromGrantHeader(p *Policy, perm Permission, value string, res Resolver) error {
	for _, item := range strings.Split(value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return fmt.Errorf("%w: %q", ErrBadGrantHeader, item)
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		var g Grantee
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "id":
			var err error
			if g, err = userGrantee(v, p.Owner, res); err != nil {
				return err
			}
		case "uri":
			g = Grantee{Type: TypeGroup, URI: v}
		case "emailaddress":
			o, ok := res.ByEmail(v)
			if !ok {
				return fmt.Errorf("%w: %s", ErrUnresolvable, v)
			}
			g = Grantee{Type: TypeUser, ID: o.ID, DisplayName: o.DisplayName}
		default:
			return fmt.Errorf("%w: %q", ErrBadGrantHeader, item)
		}
		p.Grants = append(p.Grants, Grant{g, perm})
	}
	return nil
}
