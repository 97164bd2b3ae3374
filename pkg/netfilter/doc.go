// Package netfilter turns the desired network state of a cluster bridge
// (guest ports, security groups, elastic IPs, the metadata redirect) into
// one nftables script, and applies it with the nft command.
//
// Render is a pure function from a Ruleset to the text of an `nft -f`
// script. The script replaces only the package's own tables, in one
// transaction:
//
//	table bridge koala_<bridge>   anti-spoofing on guest ports; security groups for
//	                     traffic bridged between ports (guest to guest)
//	table inet koala_<bridge>     security groups for traffic routed through the host
//	                     (forward) and between guests and the host itself
//	                     (input, output)
//	table ip koala_nat_<bridge>   elastic IP DNAT/SNAT and the metadata DNAT
//
// (one set per bridge, so that clusters sharing a host keep their own)
//
// The inet and ip tables are declared (a no-op when they exist), deleted and
// created again. The bridge table is declared with its fixed sets and
// chains, flushed (which empties its chains but keeps set elements) and
// refilled, so that its flow-tracking sets survive a re-apply. Either way
// applying a script swaps the whole filter atomically, is idempotent, and
// never touches tables that other programs own; there is no `flush
// ruleset`.
//
// # Why two filter tables
//
// Bridged frames do not reach the ip/inet hooks unless br_netfilter is
// loaded and enabled, and this package does not rely on it. So traffic
// between two ports of the bridge is filtered in the bridge family
// (prerouting for anti-spoofing, forward for security groups), and traffic
// the host routes or terminates is filtered in the inet family, where
// connection tracking and NAT live. When br_netfilter is active, bridged
// IPv4 traffic passes both tables and meets the same rules twice.
//
// The kernel's bridge family has no connection tracking unless
// nf_conntrack_bridge is built, so bridged flows are tracked by the table
// itself: a packet that both the sender's egress rules and the receiver's
// ingress rules allow records its 5-tuple (or ICMP echo id) in a dynamic
// set with a timeout, and packets of the reverse direction that match a
// recorded tuple pass as replies (ICMP errors between guests are not
// tracked). Routed flows use the kernel's conntrack ("ct state
// established,related"). As with conntrack, revoking a rule stops new
// connections; flows already under way continue while they are active.
//
// # Semantics
//
// Ingress to a guest is denied unless a rule of one of its groups allows it;
// egress likewise (the EC2 default egress rule is protocol all to
// 0.0.0.0/0). Replies are always allowed. Guests may always use DHCP and
// the metadata service. Frames from a guest's port must carry the port's MAC
// and IPv4 address (ARP included); other ethertypes (IPv6, VLAN tags, ...)
// from guest ports are dropped, and no other port may use a guest's MAC or
// IPv4 address. A Port without an Iface is a member known by address only
// (for example a guest on another node): it fills source-group sets and is
// filtered by address in the inet table, but has no anti-spoofing here.
//
// Hosts that use elastic IPs must route the public addresses to this host
// (or hold them on an interface) and enable IPv4 forwarding; a metadata
// target on a loopback address additionally needs route_localnet on the
// bridge. The package does not change sysctls or links.
package netfilter
