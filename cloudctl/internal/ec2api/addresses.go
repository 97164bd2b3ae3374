package ec2api

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/koala-cloud/koala/cloudctl/internal/addresses"
	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/ec2query"
	"github.com/koala-cloud/koala/pkg/store"
)

// publicPool is what EC2 names the pool of addresses it owns.
const publicPool = "amazon"

type allocateAddressResult struct {
	PublicIP           string `xml:"publicIp"`
	AllocationID       string `xml:"allocationId"`
	PublicIpv4Pool     string `xml:"publicIpv4Pool"`
	NetworkBorderGroup string `xml:"networkBorderGroup"`
	Domain             string `xml:"domain"`
}

func (a *API) allocateAddress(rq *request) (any, error) {
	p := rq.p
	domain, err := addresses.CheckDomain(p.String("Domain"))
	if err != nil {
		return nil, err
	}
	var want netip.Addr
	if s := p.String("Address"); s != "" {
		if want, err = netip.ParseAddr(s); err != nil || !want.Is4() {
			return nil, awserr.Newf("InvalidParameterValue", "Value (%s) for parameter address is invalid. It is not an IPv4 address.", s)
		}
	}
	if pool := p.String("PublicIpv4Pool"); pool != "" && pool != publicPool {
		return nil, awserr.Newf("InvalidParameterValue", "The pool ID '%s' does not exist", pool)
	}
	if p.String("CustomerOwnedIpv4Pool") != "" {
		return nil, awserr.New("InvalidParameterCombination", "Customer-owned IP pools are not supported.")
	}
	border := p.String("NetworkBorderGroup")
	ts, err := tagSpecs(p, "elastic-ip")
	if err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	var got addresses.Address
	err = a.update(func(tx *store.Tx) error {
		cl, pool, err := a.addressPool(tx, border, want)
		if err != nil {
			return err
		}
		got, err = addresses.Allocate(tx, addresses.Request{Owner: rq.account.ID, Zone: cl.Zone, Pool: pool, Want: want,
			Domain: domain, Limit: a.cfg.MaxElasticIPs, Now: a.cfg.Now()})
		if err != nil {
			return err
		}
		return tags.Add(tx, rq.account.ID, got.AllocationID, ts)
	})
	if err != nil {
		return nil, err
	}
	return allocateAddressResult{PublicIP: got.PublicIP, AllocationID: got.AllocationID, PublicIpv4Pool: publicPool,
		NetworkBorderGroup: got.Zone, Domain: got.Domain}, nil
}

// addressPool picks the cluster an allocation takes from: the zone the
// network border group names; for the region or none, the zone whose
// pool holds want, else the one with the most free addresses.
func (a *API) addressPool(tx *store.Tx, border string, want netip.Addr) (clusters.Cluster, []netip.Addr, error) {
	all, err := clusters.All(tx)
	if err != nil {
		return clusters.Cluster{}, nil, err
	}
	region := a.cfg.Regions[0].Name
	var best clusters.Cluster
	var bestPool []netip.Addr
	bestFree := -1
	for _, cl := range all {
		if border != "" && border != region && border != cl.Zone {
			continue
		}
		pool, err := cl.Pool()
		if err != nil {
			return best, nil, err
		}
		n, err := addresses.Free(tx, pool)
		if err != nil {
			return best, nil, err
		}
		if want.IsValid() {
			holds := false
			for _, p := range pool {
				holds = holds || p == want
			}
			if holds {
				return cl, pool, nil
			}
		}
		if n > bestFree {
			best, bestPool, bestFree = cl, pool, n
		}
	}
	switch {
	case bestFree < 0 && border != "" && border != region:
		return best, nil, awserr.Newf("InvalidParameterValue", "The network border group '%s' is not valid. Valid values are %s and its availability zones.", border, region)
	case bestFree < 0 || len(bestPool) == 0:
		return best, nil, awserr.New("InsufficientAddressCapacity",
			"No availability zone has a pool of public addresses; an administrator sets one with `cloudctl admin cluster addresses`.")
	}
	return best, bestPool, nil
}

// addressRef is how an action names an address: by allocation or
// association ID (ID, in the parameter IDName) or by public IP.
type addressRef struct {
	IDName, ID, IP string
}

// readAddressRef reads the reference from the parameters, refusing a
// malformed ID before anything is looked up.
func readAddressRef(p *ec2query.Params, idName string) (addressRef, error) {
	r := addressRef{IDName: idName, ID: p.String(idName), IP: p.String("PublicIp")}
	prefix, code := "eipalloc-", "InvalidAllocationID.Malformed"
	if idName == "AssociationId" {
		prefix, code = "eipassoc-", "InvalidAssociationID.Malformed"
	}
	switch {
	case r.ID == "" && r.IP == "":
		return r, awserr.Newf("MissingParameter", "Either public IP or %s must be specified", strings.ToLower(idName[:1])+idName[1:])
	case r.ID != "" && !strings.HasPrefix(r.ID, prefix):
		return r, awserr.Newf(code, "Invalid id: \"%s\" (expecting \"%s...\")", r.ID, prefix)
	}
	return r, nil
}

// find returns the account's address the reference names.
func (r addressRef) find(tx *store.Tx, account string) (addresses.Address, error) {
	switch {
	case r.ID != "" && r.IDName == "AllocationId":
		return addresses.ByAllocation(tx, account, r.ID)
	case r.ID != "":
		return addresses.ByAssociation(tx, account, r.ID)
	}
	return addresses.Owned(tx, account, r.IP)
}

type associateAddressResult struct {
	Return        bool   `xml:"return"`
	AssociationID string `xml:"associationId"`
}

func (a *API) associateAddress(rq *request) (any, error) {
	p := rq.p
	ref, err := readAddressRef(p, "AllocationId")
	if err != nil {
		return nil, err
	}
	reassociate, err := p.Bool("AllowReassociation")
	if err != nil {
		return nil, err
	}
	if eni := p.String("NetworkInterfaceId"); eni != "" {
		return nil, awserr.Newf("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", eni)
	}
	id := p.String("InstanceId")
	if id == "" {
		return nil, awserr.New("MissingParameter", "Either instance ID or network interface ID must be specified")
	}
	if !instanceIDRE.MatchString(id) {
		return nil, awserr.Newf("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
	}
	private := p.String("PrivateIpAddress")
	if err := rq.ready(); err != nil {
		return nil, err
	}
	var got addresses.Address
	err = a.update(func(tx *store.Tx) error {
		addr, err := ref.find(tx, rq.account.ID)
		if err != nil {
			return err
		}
		if private != "" {
			in, err := instances.Owned(tx, rq.account.ID, id)
			if err != nil {
				return err
			}
			if in.PrivateIP != private {
				return awserr.Newf("InvalidParameterValue", "The private IP address %s is not assigned to instance %s.", private, id)
			}
		}
		got, err = instances.Associate(tx, rq.account.ID, addr, id, reassociate)
		return err
	})
	if err != nil {
		return nil, err
	}
	a.kickNetwork()
	return associateAddressResult{Return: true, AssociationID: got.AssociationID}, nil
}

func (a *API) disassociateAddress(rq *request) (any, error) {
	ref, err := readAddressRef(rq.p, "AssociationId")
	if err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	err = a.update(func(tx *store.Tx) error {
		addr, err := ref.find(tx, rq.account.ID)
		if err != nil {
			return err
		}
		return instances.Disassociate(tx, addr)
	})
	if err != nil {
		return nil, err
	}
	a.kickNetwork()
	return returnResult{true}, nil
}

func (a *API) releaseAddress(rq *request) (any, error) {
	p := rq.p
	ref, err := readAddressRef(p, "AllocationId")
	if err != nil {
		return nil, err
	}
	border := p.String("NetworkBorderGroup")
	if err := rq.ready(); err != nil {
		return nil, err
	}
	err = a.update(func(tx *store.Tx) error {
		addr, err := ref.find(tx, rq.account.ID)
		if err != nil {
			return err
		}
		if border != "" && border != addr.Zone && border != a.cfg.Regions[0].Name {
			return awserr.Newf("InvalidParameterValue", "The address '%s' is not in network border group '%s'.", addr.PublicIP, border)
		}
		if err := instances.Release(tx, addr); err != nil {
			return err
		}
		return tags.Drop(tx, rq.account.ID, addr.AllocationID)
	})
	if err != nil {
		return nil, err
	}
	a.kickNetwork()
	return returnResult{true}, nil
}

type addressItem struct {
	PublicIP           string   `xml:"publicIp"`
	AllocationID       string   `xml:"allocationId"`
	Domain             string   `xml:"domain"`
	InstanceID         string   `xml:"instanceId,omitempty"`
	AssociationID      string   `xml:"associationId,omitempty"`
	PrivateIP          string   `xml:"privateIpAddress,omitempty"`
	Tags               []xmlTag `xml:"tagSet>item"`
	PublicIpv4Pool     string   `xml:"publicIpv4Pool"`
	NetworkBorderGroup string   `xml:"networkBorderGroup"`
}

type describeAddressesResult struct {
	Addresses []addressItem `xml:"addressesSet>item"`
}

func (a *API) describeAddresses(rq *request) (any, error) {
	p := rq.p
	ips, err := p.List("PublicIp")
	if err != nil {
		return nil, err
	}
	ids, err := p.List("AllocationId")
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, "eipalloc-") {
			return nil, awserr.Newf("InvalidAllocationID.Malformed", "Invalid id: \"%s\" (expecting \"eipalloc-...\")", id)
		}
	}
	filters, err := p.Filters()
	if err != nil {
		return nil, err
	}
	if err := checkFilters(filters, true, "allocation-id", "association-id", "domain", "instance-id", "network-border-group",
		"network-interface-id", "network-interface-owner-id", "private-ip-address", "public-ip", "public-ipv4-pool"); err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	out := describeAddressesResult{Addresses: []addressItem{}}
	err = a.view(func(tx *store.Tx) error {
		var chosen []addresses.Address
		if len(ips)+len(ids) == 0 {
			if chosen, err = addresses.List(tx, rq.account.ID); err != nil {
				return err
			}
		}
		for _, ip := range ips {
			addr, err := addresses.Owned(tx, rq.account.ID, ip)
			if err != nil {
				return err
			}
			chosen = append(chosen, addr)
		}
		for _, id := range ids {
			addr, err := addresses.ByAllocation(tx, rq.account.ID, id)
			if err != nil {
				return err
			}
			chosen = append(chosen, addr)
		}
		seen := map[string]bool{}
		for _, addr := range chosen {
			if seen[addr.PublicIP] {
				continue
			}
			seen[addr.PublicIP] = true
			item, err := a.addressItem(tx, addr)
			if err != nil {
				return err
			}
			ts, err := tags.Of(tx, rq.account.ID, addr.AllocationID)
			if err != nil {
				return err
			}
			if !match(filters, attrs{"allocation-id": {addr.AllocationID}, "association-id": {addr.AssociationID},
				"domain": {addr.Domain}, "instance-id": {addr.Instance}, "network-border-group": {addr.Zone},
				"private-ip-address": {item.PrivateIP}, "public-ip": {addr.PublicIP}, "public-ipv4-pool": {publicPool},
				"network-interface-id": nil, "network-interface-owner-id": nil}, ts) {
				continue
			}
			item.Tags = tagSet(ts)
			out.Addresses = append(out.Addresses, item)
		}
		return nil
	})
	return out, err
}

// addressItem renders an address with its instance's private address.
func (a *API) addressItem(tx *store.Tx, addr addresses.Address) (addressItem, error) {
	item := addressItem{PublicIP: addr.PublicIP, AllocationID: addr.AllocationID, Domain: addr.Domain,
		InstanceID: addr.Instance, AssociationID: addr.AssociationID, PublicIpv4Pool: publicPool, NetworkBorderGroup: addr.Zone}
	if addr.Instance == "" {
		return item, nil
	}
	in, err := instances.Get(tx, addr.Instance)
	if errors.Is(err, instances.ErrNotFound) {
		return item, nil
	}
	item.PrivateIP = in.PrivateIP
	return item, err
}
