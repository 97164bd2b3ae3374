// Package secgroups stores security groups and their rules in cloudctl's
// database: names and sg- IDs, a default group per account, ingress and
// egress rules with CIDR or source-group peers, and the checks EC2 makes
// (duplicates, reserved names, groups still referenced). The networking
// layer enforces them; this package only keeps them.
package secgroups
