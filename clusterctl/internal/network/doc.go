// Package network makes a cluster host's network match the cluster's
// desired state: the cluster bridge with the gateway address, IPv4
// forwarding, DHCP for the leased addresses (a supervised dnsmasq, package
// dhcp), and the packet filter (package netfilter), which in this first
// slice holds only the metadata redirect.
//
// Sync is the one entry point. It is idempotent and takes the complete
// lease set each time, so the caller runs it at start and after every
// lease change, from stored state, and again after a failure. What it does
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
// Security groups are not enforced yet: the ruleset has no ports and no
// groups, so it blocks nothing. Tables other programs own are never
// touched (see package netfilter).
//
// Commands go through Host, so that tests can record them; Exec runs them
// for real, optionally inside a network namespace.
package network
