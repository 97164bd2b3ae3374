// Package daemon is what every daemon's `serve` shares: the subcommand
// itself (flags, configuration, logger), a logger at the configured
// level, serving HTTP in the background, and running a server until a
// signal or a failure.
package daemon
