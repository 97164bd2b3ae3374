// Package admin is what `cloudctl admin ...` does: initialise the cloud,
// manage accounts and access keys, and hand out credentials. The same
// Service runs inside the daemon, behind a unix socket that only the
// daemon's owner can reach, and inside the CLI when no daemon runs.
package admin
