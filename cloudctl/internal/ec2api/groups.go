package ec2api

import (
	"sort"
	"strconv"
	"strings"

	"github.com/koala-cloud/koala/cloudctl/internal/secgroups"
	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/ec2query"
	"github.com/koala-cloud/koala/pkg/store"
)

type createGroupResult struct {
	Return  bool     `xml:"return"`
	GroupID string   `xml:"groupId"`
	Tags    []xmlTag `xml:"tagSet>item"`
}

func (a *API) createSecurityGroup(rq *request) (any, error) {
	p := rq.p
	name, err := p.Required("GroupName")
	if err != nil {
		return nil, err
	}
	desc, err := p.Required("GroupDescription")
	if err != nil {
		return nil, err
	}
	if vpc := p.String("VpcId"); vpc != "" {
		return nil, awserr.Newf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpc)
	}
	ts, err := tagSpecs(p, "security-group")
	if err != nil {
		return nil, err
	}
	if err := secgroups.CheckNew(name, desc); err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	var g secgroups.Group
	err = a.update(func(tx *store.Tx) error {
		var err error
		if g, err = secgroups.Create(tx, rq.account.ID, name, desc, a.cfg.Now()); err != nil {
			return err
		}
		return tags.Add(tx, rq.account.ID, g.ID, ts)
	})
	if err != nil {
		return nil, err
	}
	return createGroupResult{Return: true, GroupID: g.ID, Tags: tagSet(ts)}, nil
}

// groupRef reads GroupId or GroupName, one of which is required.
func groupRef(p *ec2query.Params) (string, error) {
	if id := p.String("GroupId"); id != "" {
		if !strings.HasPrefix(id, "sg-") {
			return "", awserr.Newf("InvalidGroupId.Malformed", "Invalid id: \"%s\" (expecting \"sg-...\")", id)
		}
		return id, nil
	}
	if name := p.String("GroupName"); name != "" {
		return name, nil
	}
	return "", awserr.New("MissingParameter", "The request must contain the parameter groupName or groupId")
}

type returnResult struct {
	Return bool `xml:"return"`
}

type deleteGroupResult struct {
	Return  bool   `xml:"return"`
	GroupID string `xml:"groupId,omitempty"`
}

func (a *API) deleteSecurityGroup(rq *request) (any, error) {
	ref, err := groupRef(rq.p)
	if err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	var id string
	err = a.update(func(tx *store.Tx) error {
		g, err := secgroups.Find(tx, rq.account.ID, ref)
		if err != nil {
			return err
		}
		id = g.ID
		if err := secgroups.Delete(tx, rq.account.ID, g.ID); err != nil {
			return err
		}
		return tags.Drop(tx, rq.account.ID, g.ID)
	})
	if err != nil {
		return nil, err
	}
	a.kickNetwork()
	return deleteGroupResult{Return: true, GroupID: id}, nil
}

// readPermissions reads IpPermissions.N (and the legacy flat parameters)
// into rules.
func readPermissions(p *ec2query.Params, account string) ([]secgroups.Rule, error) {
	perms, err := p.Structs("IpPermissions")
	if err != nil {
		return nil, err
	}
	var rules []secgroups.Rule
	for _, perm := range perms {
		proto, err := perm.Required("IpProtocol")
		if err != nil {
			return nil, err
		}
		from, err := perm.Int("FromPort", -1)
		if err != nil {
			return nil, err
		}
		to, err := perm.Int("ToPort", -1)
		if err != nil {
			return nil, err
		}
		base := secgroups.Rule{Protocol: proto, FromPort: from, ToPort: to}
		n := len(rules)
		ranges, err := perm.Structs("IpRanges")
		if err != nil {
			return nil, err
		}
		for _, r := range ranges {
			cidr, err := r.Required("CidrIp")
			if err != nil {
				return nil, err
			}
			rule := base
			rule.CIDR, rule.Description = cidr, r.String("Description")
			rules = append(rules, rule)
		}
		ranges6, err := perm.Structs("Ipv6Ranges")
		if err != nil {
			return nil, err
		}
		for _, r := range ranges6 {
			cidr, err := r.Required("CidrIpv6")
			if err != nil {
				return nil, err
			}
			rule := base
			rule.CIDRv6, rule.Description = cidr, r.String("Description")
			rules = append(rules, rule)
		}
		groups, err := perm.Structs("Groups")
		if err != nil {
			return nil, err
		}
		for _, g := range groups {
			rule := base
			rule.GroupID = g.String("GroupId")
			if rule.GroupID == "" {
				rule.GroupID = g.String("GroupName")
			}
			if owner := g.String("UserId"); owner != "" && owner != account {
				return nil, awserr.Newf("InvalidGroup.NotFound", "You have specified a group of another account (%s); groups of other accounts are not supported", owner)
			}
			rule.Description = g.String("Description")
			if rule.GroupID == "" {
				return nil, awserr.New("MissingParameter", "The request must contain the parameter groupId or groupName in Groups")
			}
			rules = append(rules, rule)
		}
		if len(rules) == n {
			return nil, awserr.New("InvalidParameterValue", "Each IpPermissions entry needs a peer: IpRanges, Ipv6Ranges or Groups")
		}
	}
	// The legacy flat form: IpProtocol, FromPort, ToPort with CidrIp or a
	// source group.
	if p.Has("IpProtocol") || p.Has("CidrIp") || p.Has("SourceSecurityGroupName") {
		from, err := p.Int("FromPort", -1)
		if err != nil {
			return nil, err
		}
		to, err := p.Int("ToPort", -1)
		if err != nil {
			return nil, err
		}
		rule := secgroups.Rule{Protocol: p.String("IpProtocol"), FromPort: from, ToPort: to, CIDR: p.String("CidrIp")}
		if src := p.String("SourceSecurityGroupName"); src != "" {
			if owner := p.String("SourceSecurityGroupOwnerId"); owner != "" && owner != account {
				return nil, awserr.Newf("InvalidGroup.NotFound", "groups of other accounts (%s) are not supported", owner)
			}
			rule.GroupID = src
			if rule.Protocol == "" {
				rule.Protocol = "-1"
			}
		}
		if rule.Protocol == "" {
			return nil, awserr.New("MissingParameter", "The request must contain the parameter ipProtocol")
		}
		rules = append(rules, rule)
	}
	return rules, nil
}

type ruleItem struct {
	ID          string         `xml:"securityGroupRuleId"`
	GroupID     string         `xml:"groupId"`
	GroupOwner  string         `xml:"groupOwnerId"`
	IsEgress    bool           `xml:"isEgress"`
	IpProtocol  string         `xml:"ipProtocol"`
	FromPort    int            `xml:"fromPort"`
	ToPort      int            `xml:"toPort"`
	CidrIpv4    string         `xml:"cidrIpv4,omitempty"`
	CidrIpv6    string         `xml:"cidrIpv6,omitempty"`
	Referenced  *referencedRef `xml:"referencedGroupInfo"`
	Description string         `xml:"description,omitempty"`
}

type referencedRef struct {
	GroupID string `xml:"groupId"`
	UserID  string `xml:"userId"`
}

type authorizeResult struct {
	Return bool       `xml:"return"`
	Rules  []ruleItem `xml:"securityGroupRuleSet>item"`
}

func (a *API) authorize(egress bool) action {
	return func(rq *request) (any, error) {
		ref, err := groupRef(rq.p)
		if err != nil {
			return nil, err
		}
		rules, err := readPermissions(rq.p, rq.account.ID)
		if err != nil {
			return nil, err
		}
		if _, err := tagSpecs(rq.p, "security-group-rule"); err != nil {
			return nil, err
		}
		if len(rules) == 0 {
			return nil, awserr.New("MissingParameter", "The request must contain the parameter ipPermissions")
		}
		if err := rq.ready(); err != nil {
			return nil, err
		}
		var g secgroups.Group
		var added []secgroups.Rule
		err = a.update(func(tx *store.Tx) error {
			var err error
			g, added, err = secgroups.Authorize(tx, rq.account.ID, ref, egress, rules)
			return err
		})
		if err != nil {
			return nil, err
		}
		a.kickNetwork()
		out := authorizeResult{Return: true}
		for _, r := range added {
			item := ruleItem{ID: r.ID, GroupID: g.ID, GroupOwner: g.Owner, IsEgress: egress, IpProtocol: r.Protocol,
				FromPort: r.FromPort, ToPort: r.ToPort, CidrIpv4: r.CIDR, CidrIpv6: r.CIDRv6, Description: r.Description}
			if r.GroupID != "" {
				item.Referenced = &referencedRef{r.GroupID, r.GroupOwner}
			}
			out.Rules = append(out.Rules, item)
		}
		return out, nil
	}
}

func (a *API) revoke(egress bool) action {
	return func(rq *request) (any, error) {
		ref, err := groupRef(rq.p)
		if err != nil {
			return nil, err
		}
		rules, err := readPermissions(rq.p, rq.account.ID)
		if err != nil {
			return nil, err
		}
		ids, err := rq.p.List("SecurityGroupRuleId")
		if err != nil {
			return nil, err
		}
		if len(rules) == 0 && len(ids) == 0 {
			return nil, awserr.New("MissingParameter", "The request must contain the parameter ipPermissions or securityGroupRuleIds")
		}
		if err := rq.ready(); err != nil {
			return nil, err
		}
		err = a.update(func(tx *store.Tx) error {
			if len(ids) > 0 {
				if _, err := secgroups.RevokeIDs(tx, rq.account.ID, ref, egress, ids); err != nil {
					return err
				}
			}
			if len(rules) > 0 {
				if _, err := secgroups.Revoke(tx, rq.account.ID, ref, egress, rules); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		a.kickNetwork()
		return returnResult{true}, nil
	}
}

type userIDGroupPair struct {
	UserID      string `xml:"userId"`
	GroupID     string `xml:"groupId"`
	GroupName   string `xml:"groupName,omitempty"`
	Description string `xml:"description,omitempty"`
}

type ipRange struct {
	CidrIp      string `xml:"cidrIp"`
	Description string `xml:"description,omitempty"`
}

type ipv6Range struct {
	CidrIpv6    string `xml:"cidrIpv6"`
	Description string `xml:"description,omitempty"`
}

type ipPermission struct {
	IpProtocol string            `xml:"ipProtocol"`
	FromPort   *int              `xml:"fromPort,omitempty"`
	ToPort     *int              `xml:"toPort,omitempty"`
	Groups     []userIDGroupPair `xml:"groups>item"`
	IpRanges   []ipRange         `xml:"ipRanges>item"`
	Ipv6Ranges []ipv6Range       `xml:"ipv6Ranges>item"`
	PrefixList []struct{}        `xml:"prefixListIds>item"`
}

type groupItem struct {
	OwnerID     string         `xml:"ownerId"`
	GroupID     string         `xml:"groupId"`
	GroupName   string         `xml:"groupName"`
	Description string         `xml:"groupDescription"`
	Ingress     []ipPermission `xml:"ipPermissions>item"`
	Egress      []ipPermission `xml:"ipPermissionsEgress>item"`
	Tags        []xmlTag       `xml:"tagSet>item"`
}

type describeGroupsResult struct {
	Groups    []groupItem `xml:"securityGroupInfo>item"`
	NextToken string      `xml:"nextToken,omitempty"`
}

// permissions groups rules by protocol and ports, as EC2 lists them.
func permissions(rules []secgroups.Rule, names map[string]string) []ipPermission {
	out := []ipPermission{}
	index := map[string]int{}
	for _, r := range rules {
		k := r.Protocol + "/" + strconv.Itoa(r.FromPort) + "/" + strconv.Itoa(r.ToPort)
		i, ok := index[k]
		if !ok {
			perm := ipPermission{IpProtocol: r.Protocol, Groups: []userIDGroupPair{}, IpRanges: []ipRange{}, Ipv6Ranges: []ipv6Range{}}
			if r.Protocol != "-1" {
				from, to := r.FromPort, r.ToPort
				perm.FromPort, perm.ToPort = &from, &to
			}
			out = append(out, perm)
			i = len(out) - 1
			index[k] = i
		}
		switch {
		case r.CIDR != "":
			out[i].IpRanges = append(out[i].IpRanges, ipRange{r.CIDR, r.Description})
		case r.CIDRv6 != "":
			out[i].Ipv6Ranges = append(out[i].Ipv6Ranges, ipv6Range{r.CIDRv6, r.Description})
		default:
			out[i].Groups = append(out[i].Groups, userIDGroupPair{r.GroupOwner, r.GroupID, names[r.GroupID], r.Description})
		}
	}
	return out
}

// groupAttrs are a group's values for DescribeSecurityGroups' filters.
func groupAttrs(g secgroups.Group, names map[string]string) attrs {
	a := attrs{"group-id": {g.ID}, "group-name": {g.Name}, "description": {g.Description}, "owner-id": {g.Owner}}
	for prefix, rules := range map[string][]secgroups.Rule{"ip-permission.": g.Ingress, "egress.ip-permission.": g.Egress} {
		for _, r := range rules {
			a[prefix+"protocol"] = append(a[prefix+"protocol"], r.Protocol)
			a[prefix+"from-port"] = append(a[prefix+"from-port"], strconv.Itoa(r.FromPort))
			a[prefix+"to-port"] = append(a[prefix+"to-port"], strconv.Itoa(r.ToPort))
			if r.CIDR != "" {
				a[prefix+"cidr"] = append(a[prefix+"cidr"], r.CIDR)
			}
			if r.CIDRv6 != "" {
				a[prefix+"ipv6-cidr"] = append(a[prefix+"ipv6-cidr"], r.CIDRv6)
			}
			if r.GroupID != "" {
				a[prefix+"group-id"] = append(a[prefix+"group-id"], r.GroupID)
				a[prefix+"group-name"] = append(a[prefix+"group-name"], names[r.GroupID])
				a[prefix+"user-id"] = append(a[prefix+"user-id"], r.GroupOwner)
			}
		}
	}
	return a
}

var groupFilters = []string{"description", "group-id", "group-name", "owner-id", "vpc-id",
	"ip-permission.cidr", "ip-permission.from-port", "ip-permission.group-id", "ip-permission.group-name",
	"ip-permission.ipv6-cidr", "ip-permission.prefix-list-id", "ip-permission.protocol", "ip-permission.to-port",
	"ip-permission.user-id", "egress.ip-permission.cidr", "egress.ip-permission.from-port",
	"egress.ip-permission.group-id", "egress.ip-permission.group-name", "egress.ip-permission.ipv6-cidr",
	"egress.ip-permission.prefix-list-id", "egress.ip-permission.protocol", "egress.ip-permission.to-port",
	"egress.ip-permission.user-id"}

func (a *API) describeSecurityGroups(rq *request) (any, error) {
	p := rq.p
	names, err := p.List("GroupName")
	if err != nil {
		return nil, err
	}
	ids, err := p.List("GroupId")
	if err != nil {
		return nil, err
	}
	filters, err := p.Filters()
	if err != nil {
		return nil, err
	}
	if err := checkFilters(filters, true, groupFilters...); err != nil {
		return nil, err
	}
	paged := p.Has("MaxResults") || p.Has("NextToken")
	if paged && len(names)+len(ids) > 0 {
		return nil, awserr.New("InvalidParameterCombination", "The parameter groupNames or groupIds cannot be used with the parameter maxResults")
	}
	fingerprint := ec2query.Fingerprint(filters, "DescribeSecurityGroups", rq.account.ID)
	var chosen []secgroups.Group
	var all []secgroups.Group
	var byID map[string]tagged
	listGroups := func(tx *store.Tx) error {
		var err error
		if all, err = secgroups.List(tx, rq.account.ID); err != nil {
			return err
		}
		byID = map[string]tagged{}
		for _, g := range all {
			ts, err := tags.Of(tx, rq.account.ID, g.ID)
			if err != nil {
				return err
			}
			byID[g.ID] = tagged{g, ts}
		}
		for _, n := range names {
			g, err := secgroups.Find(tx, rq.account.ID, n)
			if err != nil {
				return err
			}
			chosen = append(chosen, g)
		}
		for _, id := range ids {
			if !strings.HasPrefix(id, "sg-") {
				return awserr.Newf("InvalidGroupId.Malformed", "Invalid id: \"%s\" (expecting \"sg-...\")", id)
			}
			g, err := secgroups.Find(tx, rq.account.ID, id)
			if err != nil {
				return err
			}
			chosen = append(chosen, g)
		}
		return nil
	}
	// Listing may have to create the account's default group.
	err = a.view(listGroups)
	if secgroups.NeedsWrite(err) {
		chosen = nil
		err = a.update(listGroups)
	}
	if err != nil {
		return nil, err
	}
	if len(names)+len(ids) == 0 {
		chosen = all
	}
	groupNames := map[string]string{}
	for _, g := range all {
		groupNames[g.ID] = g.Name
	}
	var matched []string
	seen := map[string]bool{}
	for _, g := range chosen {
		if seen[g.ID] {
			continue
		}
		seen[g.ID] = true
		if match(filters, groupAttrs(g, groupNames), byID[g.ID].tags) {
			matched = append(matched, g.ID)
		}
	}
	sort.Strings(matched)
	page, next := matched, ""
	if paged {
		if page, next, err = a.tokens.Page(p, matched, fingerprint, 5, 1000); err != nil {
			return nil, err
		}
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	out := describeGroupsResult{Groups: []groupItem{}, NextToken: next}
	for _, id := range page {
		t := byID[id]
		out.Groups = append(out.Groups, groupItem{
			OwnerID: t.group.Owner, GroupID: t.group.ID, GroupName: t.group.Name, Description: t.group.Description,
			Ingress: permissions(t.group.Ingress, groupNames), Egress: permissions(t.group.Egress, groupNames),
			Tags: tagSet(t.tags),
		})
	}
	return out, nil
}

type tagged struct {
	group secgroups.Group
	tags  []tags.Tag
}
