// Package dhcp serves a cluster's private addresses over DHCP on the cluster
// bridge, so that a guest gets exactly the private IP the cluster leased to
// its MAC address (the address DescribeInstances reports).
//
// The server is a supervised dnsmasq with DNS turned off. dnsmasq answers
// only MAC addresses listed in a hosts file that this package owns
// (SetHosts rewrites it atomically and signals dnsmasq to re-read it); every
// other client is ignored, and no address is ever allocated dynamically.
// The supervisor restarts dnsmasq with backoff when it dies, replaces one
// left running by a crashed previous run, and restarts it on purpose when a
// lease it remembers would keep a reassigned address from its new owner.
//
// Nothing here creates the bridge: dnsmasq listens with --bind-dynamic, so
// the bridge may appear, disappear and come back while it runs.
package dhcp
