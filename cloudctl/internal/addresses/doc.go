// Package addresses keeps the public IPv4 addresses in use: elastic IPs
// that accounts allocate from a cluster's pool, and the addresses the
// cloud hands instances at launch in clusters that auto-assign them.
// An address not in the store is free. Records are keyed by the address,
// so one address can never be handed out twice.
//
// Which addresses a pool holds is the cluster registry's business
// (ippool.Parse reads an administrator's specification); which instance an
// address is associated with is recorded here and on the instance, in
// the same transaction, by the instances package.
package addresses
