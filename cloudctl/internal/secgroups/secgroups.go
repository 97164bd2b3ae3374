package secgroups

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/ident"
	"github.com/koala-cloud/koala/pkg/store"
)

// Errors callers test for; each wraps a message fit for the client.
var (
	ErrDuplicate     = errors.New("security group already exists")
	ErrNotFound      = errors.New("no such security group")
	ErrReserved      = errors.New("reserved security group")
	ErrInUse         = errors.New("security group has a dependent object")
	ErrRuleDuplicate = errors.New("rule already exists")
	ErrRuleNotFound  = errors.New("no such rule")
	ErrInvalid       = errors.New("invalid value")
)

// DefaultName is the name of each account's default group.
const DefaultName = "default"

// Rule is one rule: a protocol and port range from or to one peer.
type Rule struct {
	ID          string `json:"id"`       // sgr-...
	Protocol    string `json:"protocol"` // tcp, udp, icmp, icmpv6, -1, or a number
	FromPort    int    `json:"from"`     // -1 when the protocol has no ports
	ToPort      int    `json:"to"`
	CIDR        string `json:"cidr,omitempty"`
	CIDRv6      string `json:"cidr6,omitempty"`
	GroupID     string `json:"group,omitempty"`
	GroupOwner  string `json:"group_owner,omitempty"`
	Description string `json:"description,omitempty"`
}

// same reports whether two rules allow the same traffic from the same
// peer (descriptions aside).
func (r Rule) same(o Rule) bool {
	return r.Protocol == o.Protocol && r.FromPort == o.FromPort && r.ToPort == o.ToPort &&
		r.CIDR == o.CIDR && r.CIDRv6 == o.CIDRv6 && r.GroupID == o.GroupID
}

// Group is a security group.
type Group struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Owner       string    `json:"owner"` // account ID
	Ingress     []Rule    `json:"ingress"`
	Egress      []Rule    `json:"egress"`
	Created     time.Time `json:"created"`
}

func key(account, id string) []byte { return []byte(account + "/" + id) }

// Get returns one of an account's groups by ID. It never creates the
// default group, so a read-only transaction does.
func Get(tx *store.Tx, account, id string) (Group, error) {
	var g Group
	err := tx.Get(state.Groups, key(account, id), &g)
	if errors.Is(err, store.ErrNotFound) {
		return g, fmt.Errorf("%w: The security group '%s' does not exist", ErrNotFound, id)
	}
	return g, err
}

// Put stores a group as it is, under its owner.
func Put(tx *store.Tx, g Group) error { return tx.Put(state.Groups, key(g.Owner, g.ID), g) }

// List returns an account's groups, creating its default group first if
// it has none yet.
func List(tx *store.Tx, account string) ([]Group, error) {
	if _, err := EnsureDefault(tx, account); err != nil {
		return nil, err
	}
	return list(tx, account)
}

func list(tx *store.Tx, account string) ([]Group, error) {
	b, err := tx.Bucket(state.Groups)
	if err != nil {
		return nil, err
	}
	prefix := []byte(account + "/")
	var out []Group
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var g Group
		if err := store.Decode(v, &g); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// EnsureDefault creates the account's default group when it is missing:
// ingress from its own members, egress anywhere, as EC2's default group.
// It needs a read-write transaction only when it creates.
func EnsureDefault(tx *store.Tx, account string) (Group, error) {
	all, err := list(tx, account)
	if err != nil {
		return Group{}, err
	}
	for _, g := range all {
		if g.Name == DefaultName {
			return g, nil
		}
	}
	if !tx.Bolt().Writable() {
		return Group{}, errNeedsWrite
	}
	g := Group{ID: ident.Resource("sg"), Name: DefaultName, Description: "default group", Owner: account}
	g.Ingress = []Rule{{ID: ident.Resource("sgr"), Protocol: "-1", FromPort: -1, ToPort: -1, GroupID: g.ID, GroupOwner: account}}
	g.Egress = []Rule{allEgress()}
	return g, tx.Put(state.Groups, key(account, g.ID), g)
}

// errNeedsWrite tells a caller in a read-only transaction to retry in a
// read-write one: the default group has to be created first.
var errNeedsWrite = errors.New("default group missing in a read-only transaction")

// NeedsWrite reports whether err asks for a read-write transaction.
func NeedsWrite(err error) bool { return errors.Is(err, errNeedsWrite) }

func allEgress() Rule {
	return Rule{ID: ident.Resource("sgr"), Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"}
}

// CheckNew validates the name and description of a new group.
func CheckNew(name, description string) error {
	switch {
	case name == "" || len(name) > 255:
		return fmt.Errorf("%w: group name must be 1 to 255 characters", ErrInvalid)
	case strings.HasPrefix(strings.ToLower(name), "sg-"):
		return fmt.Errorf("%w: Group names may not be in the format sg-*", ErrInvalid)
	case len(description) > 255:
		return fmt.Errorf("%w: group description must be at most 255 characters", ErrInvalid)
	}
	for _, s := range []string{name, description} {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] > 0x7e {
				return fmt.Errorf("%w: %q: only ASCII characters are allowed", ErrInvalid, s)
			}
		}
	}
	return nil
}

// Create makes a group with egress anywhere, as EC2 does.
func Create(tx *store.Tx, account, name, description string, now time.Time) (Group, error) {
	if err := CheckNew(name, description); err != nil {
		return Group{}, err
	}
	all, err := List(tx, account)
	if err != nil {
		return Group{}, err
	}
	for _, g := range all {
		if g.Name == name {
			return Group{}, fmt.Errorf("%w: The security group '%s' already exists", ErrDuplicate, name)
		}
	}
	g := Group{ID: ident.Resource("sg"), Name: name, Description: description, Owner: account,
		Egress: []Rule{allEgress()}, Created: now.UTC()}
	return g, tx.Put(state.Groups, key(account, g.ID), g)
}

// Find returns a group by sg- ID or by name.
func Find(tx *store.Tx, account, idOrName string) (Group, error) {
	all, err := List(tx, account)
	if err != nil {
		return Group{}, err
	}
	for _, g := range all {
		if g.ID == idOrName || (g.Name == idOrName && !strings.HasPrefix(idOrName, "sg-")) {
			return g, nil
		}
	}
	if strings.HasPrefix(idOrName, "sg-") {
		return Group{}, fmt.Errorf("%w: The security group '%s' does not exist", ErrNotFound, idOrName)
	}
	return Group{}, fmt.Errorf("%w: The security group '%s' does not exist in default VPC", ErrNotFound, idOrName)
}

// Delete removes a group that no other group refers to.
func Delete(tx *store.Tx, account, id string) error {
	g, err := Find(tx, account, id)
	if err != nil {
		return err
	}
	if g.Name == DefaultName {
		return fmt.Errorf("%w: The security group 'default' is reserved", ErrReserved)
	}
	all, err := list(tx, account)
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.ID == g.ID {
			continue
		}
		for _, r := range append(append([]Rule(nil), o.Ingress...), o.Egress...) {
			if r.GroupID == g.ID {
				return fmt.Errorf("%w: resource %s has a dependent object", ErrInUse, g.ID)
			}
		}
	}
	return tx.Delete(state.Groups, key(account, g.ID))
}

// Normalize checks a rule's protocol and ports and puts them in EC2's
// canonical form (protocol names, -1 for "all", ports -1 where none).
func Normalize(r *Rule) error {
	p := strings.ToLower(strings.TrimSpace(r.Protocol))
	switch p {
	case "6":
		p = "tcp"
	case "17":
		p = "udp"
	case "1":
		p = "icmp"
	case "58":
		p = "icmpv6"
	case "all":
		p = "-1"
	}
	r.Protocol = p
	switch p {
	case "tcp", "udp":
		if r.FromPort < 0 || r.ToPort > 65535 || r.FromPort > r.ToPort {
			return fmt.Errorf("%w: Invalid value for portRange. Must specify both from and to ports with TCP/UDP.", ErrInvalid)
		}
	case "icmp", "icmpv6":
		if r.FromPort < -1 || r.FromPort > 255 || r.ToPort < -1 || r.ToPort > 255 {
			return fmt.Errorf("%w: ICMP type and code must be between -1 and 255", ErrInvalid)
		}
	case "-1":
		r.FromPort, r.ToPort = -1, -1
	default:
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 {
			return fmt.Errorf("%w: Invalid value '%s' for IP protocol. Unknown protocol.", ErrInvalid, r.Protocol)
		}
		r.FromPort, r.ToPort = -1, -1
	}
	peers := 0
	if r.CIDR != "" {
		pfx, err := netip.ParsePrefix(r.CIDR)
		if err != nil || !pfx.Addr().Is4() {
			return fmt.Errorf("%w: CIDR block %s is malformed", ErrInvalid, r.CIDR)
		}
		r.CIDR = pfx.Masked().String()
		peers++
	}
	if r.CIDRv6 != "" {
		pfx, err := netip.ParsePrefix(r.CIDRv6)
		if err != nil || !pfx.Addr().Is6() {
			return fmt.Errorf("%w: CIDR block %s is malformed", ErrInvalid, r.CIDRv6)
		}
		r.CIDRv6 = pfx.Masked().String()
		peers++
	}
	if r.GroupID != "" {
		peers++
	}
	if peers != 1 {
		return fmt.Errorf("%w: each rule needs exactly one of a CIDR range or a source group", ErrInvalid)
	}
	return nil
}

// Authorize adds rules to a group's ingress (or egress). Every rule must
// be new; source groups must exist.
func Authorize(tx *store.Tx, account, groupID string, egress bool, rules []Rule) (Group, []Rule, error) {
	g, err := Find(tx, account, groupID)
	if err != nil {
		return Group{}, nil, err
	}
	list := &g.Ingress
	if egress {
		list = &g.Egress
	}
	var added []Rule
	for _, r := range rules {
		if err := Normalize(&r); err != nil {
			return Group{}, nil, err
		}
		if r.GroupID != "" {
			src, err := Find(tx, account, r.GroupID)
			if err != nil {
				return Group{}, nil, err
			}
			r.GroupID, r.GroupOwner = src.ID, account
		}
		for _, have := range append(*list, added...) {
			if have.same(r) {
				return Group{}, nil, fmt.Errorf("%w: the specified rule %q already exists", ErrRuleDuplicate, describe(r))
			}
		}
		r.ID = ident.Resource("sgr")
		added = append(added, r)
	}
	*list = append(*list, added...)
	return g, added, tx.Put(state.Groups, key(account, g.ID), g)
}

// Revoke removes rules from a group's ingress (or egress); each must be
// there.
func Revoke(tx *store.Tx, account, groupID string, egress bool, rules []Rule) (Group, error) {
	g, err := Find(tx, account, groupID)
	if err != nil {
		return Group{}, err
	}
	list := &g.Ingress
	if egress {
		list = &g.Egress
	}
	for _, r := range rules {
		if err := Normalize(&r); err != nil {
			return Group{}, err
		}
		if r.GroupID != "" {
			if src, err := Find(tx, account, r.GroupID); err == nil {
				r.GroupID = src.ID
			}
		}
		i := -1
		for j, have := range *list {
			if have.same(r) {
				i = j
				break
			}
		}
		if i < 0 {
			return Group{}, fmt.Errorf("%w: The specified rule does not exist in this security group.", ErrRuleNotFound)
		}
		*list = append((*list)[:i], (*list)[i+1:]...)
	}
	return g, tx.Put(state.Groups, key(account, g.ID), g)
}

// RevokeIDs removes rules by sgr- ID.
func RevokeIDs(tx *store.Tx, account, groupID string, egress bool, ids []string) (Group, error) {
	g, err := Find(tx, account, groupID)
	if err != nil {
		return Group{}, err
	}
	list := &g.Ingress
	if egress {
		list = &g.Egress
	}
	for _, id := range ids {
		i := -1
		for j, have := range *list {
			if have.ID == id {
				i = j
			}
		}
		if i < 0 {
			return Group{}, fmt.Errorf("%w: The security group rule ID '%s' does not exist", ErrRuleNotFound, id)
		}
		*list = append((*list)[:i], (*list)[i+1:]...)
	}
	return g, tx.Put(state.Groups, key(account, g.ID), g)
}

func describe(r Rule) string {
	peer := r.CIDR + r.CIDRv6 + r.GroupID
	return fmt.Sprintf("peer: %s, %s, from port: %d, to port: %d, ALLOW", peer, strings.ToUpper(r.Protocol), r.FromPort, r.ToPort)
}
