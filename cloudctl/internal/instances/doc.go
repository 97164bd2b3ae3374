// Package instances keeps cloudctl's record of every instance and drives
// the clusters that run them: it places new instances on a cluster,
// forwards actions, applies the state changes clusters push up, and
// reconciles with each cluster periodically so that no instance stays
// pending, or half-terminated, for ever. It also hands each cluster the
// security groups its live instances are in, after every change.
package instances
