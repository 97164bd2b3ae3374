// Package network makes a cluster host's network match the cluster's
// desired state: the cluster bridge with the gateway address, IPv4
// forwarding, DHCP for the leased addresses (a supervised dnsmasq, package
// dhcp), and the packet filter (package netfilter): security groups and
// the metadata redirect.
//
// Sync is the one entry point. It is idempotent and takes the complete
// lease set and security groups each time, so the caller runs it at start
// and after every lease or group change, from stored state, and again
// after a failure. What it does
// depends on the mode:
//
//	SYSTEM          the bridge belongs to the host and an external DHCP
//	                server serves it: nothing is changed, except that the
//	                metadata redirect is applied when one is configured.
//	STATIC,         the bridge is created when missing (never deleted),
//	MANAGED-NOVLAN, given the gateway address with the subnet's prefix and
//	MANAGED         set up; IPv4 forwarding is enabled; dnsmasq serves
//	                every lease's MAC its IP; the ruleset is applied.
//
// Security groups are enforced in the MANAGED modes only, and only once
// cloudctl has handed the cluster its groups (Groups.Received): every
// lease is then a port in its instance's groups, and a group not in the
// set has no rules. netfilter filters every port by address in its inet
// table (routed and host traffic). A port whose node reported the guest's
// host device (Lease.Iface, libvirt's vnetN) is also filtered on that
// device in the bridge table: its frames must carry the lease's MAC and
// address (anti-spoofing), and traffic it bridges to other guests meets
// the groups there. Until the device is reported a port is known by
// address only, and traffic between guests on the bridge is filtered only
// when br_netfilter is active. The devices are names on the node's host:
// the filter assumes that the nodes run on the cluster host, whose bridge
// their guests join. Before groups are received, and
// in SYSTEM and STATIC mode, the ruleset has no ports and no groups and
// blocks nothing. Tables other programs own are never touched (see
// package netfilter).
//
// Commands go through Host, so that tests can record them; Exec runs them
// for real, optionally inside a network namespace.
package network
