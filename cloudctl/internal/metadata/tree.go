package metadata

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// versions is the root listing: the metadata versions EC2 lists (AWS EC2 user
// guide, "Retrieve instance metadata"). All of them serve the same tree;
// cloud-init probes 2021-03-23, 2018-09-24, 2016-09-02 and needs one of them.
var versions = []string{
	"1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
	"2008-02-01", "2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01",
	"2012-01-12", "2014-02-25", "2014-11-05", "2015-10-20", "2016-04-19",
	"2016-06-30", "2016-09-02", "2018-03-28", "2018-08-17", "2018-09-24",
	"2019-10-01", "2020-10-27", "2021-01-03", "2021-03-23", "latest",
}

func knownVersion(v string) bool { return slices.Contains(versions, v) }

// node is a leaf (value) or a directory (entries, non-nil).
type node struct {
	value   []byte
	ctype   string
	entries []entry
}

// entry is a named child. label is what the listing shows when it differs
// from the path name (public-keys lists "0=name").
type entry struct {
	name, label string
	n           *node
}

func (n *node) dir() bool { return n.entries != nil }

// child returns the named child, or nil.
func (n *node) child(name string) *node {
	for _, e := range n.entries {
		if e.name == name {
			return e.n
		}
	}
	return nil
}

// listing is the directory's text: one entry a line, directories with a
// trailing slash, no newline after the last.
func (n *node) listing() string {
	lines := make([]string, len(n.entries))
	for i, e := range n.entries {
		switch {
		case e.label != "":
			lines[i] = e.label
		case e.n.dir():
			lines[i] = e.name + "/"
		default:
			lines[i] = e.name
		}
	}
	return strings.Join(lines, "\n")
}

// dirBuilder collects entries, skipping empty leaves.
type dirBuilder struct{ entries []entry }

func (b *dirBuilder) leaf(name, value string) {
	if value != "" {
		b.entries = append(b.entries, entry{name: name, n: &node{value: []byte(value), ctype: "text/plain"}})
	}
}

func (b *dirBuilder) sub(name string, n *node) {
	if n != nil && len(n.entries) > 0 {
		b.entries = append(b.entries, entry{name: name, n: n})
	}
}

// sorted returns the directory with entries in name order, as EC2 lists.
func (b *dirBuilder) sorted() *node {
	slices.SortFunc(b.entries, func(x, y entry) int { return strings.Compare(x.name, y.name) })
	return b.node()
}

// node returns the directory in insertion order.
func (b *dirBuilder) node() *node {
	if b.entries == nil {
		b.entries = []entry{}
	}
	return &node{entries: b.entries}
}

// versionTree is what /<version>/ serves for an instance.
func versionTree(in Instance) *node {
	var b dirBuilder
	b.sub("dynamic", dynamicTree(in))
	b.sub("meta-data", metaDataTree(in))
	if len(in.UserData) > 0 {
		b.entries = append(b.entries, entry{name: "user-data",
			n: &node{value: in.UserData, ctype: "application/octet-stream"}})
	}
	return b.sorted()
}

func dynamicTree(in Instance) *node {
	var id dirBuilder
	id.entries = append(id.entries, entry{name: "document",
		n: &node{value: identityDocument(in), ctype: "text/plain"}})
	var b dirBuilder
	b.sub("instance-identity", id.node())
	return b.sorted()
}

// addr is an address's text, empty for the zero Addr.
func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func metaDataTree(in Instance) *node {
	privateIP := addr(in.PrivateIP)
	publicIP := addr(in.PublicIP)
	localHost := in.PrivateDNS
	if localHost == "" {
		localHost = privateIP
	}
	publicHost := in.PublicDNS
	if publicHost == "" {
		publicHost = publicIP
	}
	mac := strings.ToLower(in.MAC)

	var b dirBuilder
	b.leaf("ami-id", in.ImageID)
	b.leaf("ami-launch-index", strconv.Itoa(in.LaunchIndex))
	b.leaf("ami-manifest-path", in.ManifestPath)
	b.sub("block-device-mapping", blockDevices(in.BlockDevices))
	b.leaf("hostname", localHost)
	b.leaf("instance-action", "none")
	b.leaf("instance-id", in.ID)
	b.leaf("instance-life-cycle", "on-demand")
	b.leaf("instance-type", in.InstanceType)
	b.leaf("kernel-id", in.KernelID)
	b.leaf("local-hostname", localHost)
	b.leaf("local-ipv4", privateIP)
	b.leaf("mac", mac)
	if mac != "" {
		var nic dirBuilder
		nic.leaf("device-number", "0")
		nic.leaf("local-hostname", localHost)
		nic.leaf("local-ipv4s", privateIP)
		nic.leaf("mac", mac)
		nic.leaf("owner-id", in.AccountID)
		nic.leaf("public-hostname", publicHost)
		nic.leaf("public-ipv4s", publicIP)
		nic.leaf("security-groups", strings.Join(in.SecurityGroups, "\n"))
		var macs, ifaces, network dirBuilder
		macs.sub(mac, nic.sorted())
		ifaces.sub("macs", macs.node())
		network.sub("interfaces", ifaces.node())
		b.sub("network", network.node())
	}
	var placement dirBuilder
	placement.leaf("availability-zone", in.Zone)
	placement.leaf("region", in.Region)
	b.sub("placement", placement.sorted())
	b.leaf("public-hostname", publicHost)
	b.leaf("public-ipv4", publicIP)
	b.sub("public-keys", publicKeys(in.PublicKeys))
	b.leaf("ramdisk-id", in.RamdiskID)
	b.leaf("reservation-id", in.ReservationID)
	b.leaf("security-groups", strings.Join(in.SecurityGroups, "\n"))
	var services dirBuilder
	services.leaf("domain", "amazonaws.com")
	services.leaf("partition", "aws")
	b.sub("services", services.node())
	return b.sorted()
}

func blockDevices(m map[string]string) *node {
	var b dirBuilder
	for name, dev := range m {
		b.leaf(name, dev)
	}
	return b.sorted()
}

// publicKeys lists "N=name"; N/ holds openssh-key.
func publicKeys(keys []PublicKey) *node {
	var b dirBuilder
	for i, k := range keys {
		var key dirBuilder
		key.leaf("openssh-key", k.OpenSSH)
		n := key.node()
		if len(n.entries) == 0 {
			continue
		}
		idx := strconv.Itoa(i)
		b.entries = append(b.entries, entry{name: idx, label: idx + "=" + k.Name, n: n})
	}
	return b.node()
}
