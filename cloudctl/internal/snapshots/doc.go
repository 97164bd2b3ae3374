// Package snapshots keeps cloudctl's records of EBS snapshots and drives
// the ebs daemons and walrus to match them.
//
// CreateSnapshot writes a record as pending before the reply; the
// controller then starts the job on the ebs of the volume's zone (which
// copies the volume's chunks into walrus under a manifest named by the
// snapshot ID) and follows it until ebs reports it completed or failed.
// DeleteSnapshot marks the record deleting, which hides it at once; the
// controller drops the manifest from walrus, once no volume is still
// filling from it, and then the record.
//
// A snapshot's owner may let other accounts, or everyone, create volumes
// from it (its create volume permission); those accounts see it too.
package snapshots
