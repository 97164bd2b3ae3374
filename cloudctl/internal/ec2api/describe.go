package ec2api

import (
	"fmt"
	"strconv"

	"github.com/koala-cloud/koala/cloudctl/internal/instances"
	"github.com/koala-cloud/koala/cloudctl/internal/vmtypes"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"

	"github.com/koala-cloud/koala/pkg/awserr"
)

type regionItem struct {
	RegionName     string `xml:"regionName"`
	RegionEndpoint string `xml:"regionEndpoint"`
	OptInStatus    string `xml:"optInStatus"`
}

type describeRegionsResult struct {
	Regions []regionItem `xml:"regionInfo>item"`
}

func (a *API) describeRegions(rq *request) (any, error) {
	names, err := rq.p.List("RegionName")
	if err != nil {
		return nil, err
	}
	if _, err := rq.p.Bool("AllRegions"); err != nil {
		return nil, err
	}
	filters, err := rq.p.Filters()
	if err != nil {
		return nil, err
	}
	if err := checkFilters(filters, false, "endpoint", "region-name", "opt-in-status"); err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	byName := map[string]Region{}
	for _, r := range a.cfg.Regions {
		byName[r.Name] = r
	}
	regions := a.cfg.Regions
	if len(names) > 0 {
		regions = nil
		for _, n := range names {
			r, ok := byName[n]
			if !ok {
				return nil, awserr.Newf("InvalidParameterValue", "Invalid region: %s", n)
			}
			regions = append(regions, r)
		}
	}
	out := describeRegionsResult{Regions: []regionItem{}}
	for _, r := range regions {
		item := regionItem{r.Name, r.Endpoint, "opt-in-not-required"}
		if match(filters, attrs{"endpoint": {r.Endpoint}, "region-name": {r.Name}, "opt-in-status": {item.OptInStatus}}, nil) {
			out.Regions = append(out.Regions, item)
		}
	}
	return out, nil
}

type zoneItem struct {
	ZoneName           string   `xml:"zoneName"`
	ZoneState          string   `xml:"zoneState"`
	RegionName         string   `xml:"regionName"`
	ZoneID             string   `xml:"zoneId"`
	Messages           []string `xml:"messageSet>item"`
	OptInStatus        string   `xml:"optInStatus"`
	GroupName          string   `xml:"groupName"`
	NetworkBorderGroup string   `xml:"networkBorderGroup"`
	ZoneType           string   `xml:"zoneType"`
}

type describeZonesResult struct {
	Zones []zoneItem `xml:"availabilityZoneInfo>item"`
}

func (a *API) describeAvailabilityZones(rq *request) (any, error) {
	names, err := rq.p.List("ZoneName")
	if err != nil {
		return nil, err
	}
	ids, err := rq.p.List("ZoneId")
	if err != nil {
		return nil, err
	}
	if _, err := rq.p.Bool("AllAvailabilityZones"); err != nil {
		return nil, err
	}
	filters, err := rq.p.Filters()
	if err != nil {
		return nil, err
	}
	if err := checkFilters(filters, false, "zone-name", "zone-id", "region-name", "state", "zone-type", "group-name",
		"opt-in-status", "network-border-group", "message"); err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	verbose := len(names) == 1 && names[0] == "verbose" && rq.account.Name == "admin"
	if verbose {
		names = nil
	}
	region := a.cfg.Regions[0].Name
	all := map[string]zoneItem{}
	var order []string
	zones := a.cfg.Zones
	if a.fleet != nil {
		registered, err := a.fleet.Zones()
		if err != nil {
			return nil, err
		}
		if len(registered) > 0 {
			zones = registered
		}
	}
	for i, z := range zones {
		all[z] = zoneItem{ZoneName: z, ZoneState: "available", RegionName: region, ZoneID: region + "-az" + strconv.Itoa(i+1),
			Messages: []string{}, OptInStatus: "opt-in-not-required", GroupName: region, NetworkBorderGroup: region,
			ZoneType: "availability-zone"}
		order = append(order, z)
	}
	want := map[string]bool{}
	for _, n := range names {
		if _, ok := all[n]; !ok {
			return nil, awserr.Newf("InvalidParameterValue", "The zone '%s' does not exist.", n)
		}
		want[n] = true
	}
	for _, id := range ids {
		found := false
		for _, z := range all {
			if z.ZoneID == id {
				want[z.ZoneName], found = true, true
			}
		}
		if !found {
			return nil, awserr.Newf("InvalidParameterValue", "The zone ID '%s' does not exist.", id)
		}
	}
	if verbose {
		return a.verboseZones(rq, order, all)
	}
	out := describeZonesResult{Zones: []zoneItem{}}
	for _, n := range order {
		z := all[n]
		if len(want) > 0 && !want[n] {
			continue
		}
		if match(filters, attrs{"zone-name": {z.ZoneName}, "zone-id": {z.ZoneID}, "region-name": {z.RegionName},
			"state": {z.ZoneState}, "zone-type": {z.ZoneType}, "group-name": {z.GroupName},
			"opt-in-status": {z.OptInStatus}, "network-border-group": {z.NetworkBorderGroup}}, nil) {
			out.Zones = append(out.Zones, z)
		}
	}
	return out, nil
}

type attributeValue struct {
	Value string `xml:"attributeValue"`
}

type attributeItem struct {
	Name   string           `xml:"attributeName"`
	Values []attributeValue `xml:"attributeValueSet>item"`
}

type describeAttributesResult struct {
	Attributes []attributeItem `xml:"accountAttributeSet>item"`
}

func (a *API) describeAccountAttributes(rq *request) (any, error) {
	names, err := rq.p.List("AttributeName")
	if err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	all := []attributeItem{
		{"supported-platforms", []attributeValue{{"EC2"}}},
		{"default-vpc", []attributeValue{{"none"}}},
		{"max-instances", []attributeValue{{strconv.Itoa(a.cfg.MaxInstances)}}},
		{"max-elastic-ips", []attributeValue{{strconv.Itoa(a.cfg.MaxElasticIPs)}}},
		{"vpc-max-security-groups-per-interface", []attributeValue{{"5"}}},
		{"vpc-max-elastic-ips", []attributeValue{{strconv.Itoa(a.cfg.MaxElasticIPs)}}},
	}
	if len(names) == 0 {
		return describeAttributesResult{all}, nil
	}
	var out describeAttributesResult
	for _, n := range names {
		found := false
		for _, at := range all {
			if at.Name == n {
				out.Attributes = append(out.Attributes, at)
				found = true
			}
		}
		if !found {
			return nil, awserr.Newf("InvalidParameterValue", "Value (%s) for parameter attributeName is invalid. Unknown attribute name", n)
		}
	}
	return out, nil
}

// verboseZones is Eucalyptus's admin view of DescribeAvailabilityZones
// verbose: under each zone, each VM type's free and maximum instance
// counts and its cores, memory (MiB) and disk (GiB).
func (a *API) verboseZones(rq *request, order []string, all map[string]zoneItem) (any, error) {
	var types []api.VMType
	if err := a.view(func(tx *store.Tx) error {
		var err error
		types, err = vmtypes.All(tx)
		return err
	}); err != nil {
		return nil, err
	}
	byZone := map[string]instances.ZoneResources{}
	if a.fleet != nil {
		res, err := a.fleet.Resources(rq.ctx, types)
		if err != nil {
			return nil, err
		}
		for _, r := range res {
			byZone[r.Zone] = r
		}
	}
	out := describeZonesResult{Zones: []zoneItem{}}
	row := func(name, state string) zoneItem {
		return zoneItem{ZoneName: name, ZoneState: state, Messages: []string{}}
	}
	for _, n := range order {
		z := all[n]
		r, ok := byZone[n]
		if !ok || r.Err != nil {
			z.ZoneState = "unavailable"
		}
		out.Zones = append(out.Zones, z, row("|- vm types", "free / max   cpu   ram  disk"))
		for _, t := range types {
			free, most := 0, 0
			for _, ts := range r.Types {
				if ts.Name == t.Name {
					free, most = ts.Free, ts.Max
				}
			}
			out.Zones = append(out.Zones, row("|- "+t.Name, fmt.Sprintf("%04d / %04d %4d %5d %5d", free, most, t.Cores, t.MemoryMiB, t.DiskGiB)))
		}
	}
	return out, nil
}
