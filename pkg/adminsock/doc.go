// Package adminsock is what the daemons' admin sockets share: JSON over
// HTTP on a unix socket created mode 0600, so that reaching it is the
// authorisation. Listen creates the socket; Replier and Decode serve it;
// Client calls it from the CLI. Each daemon keeps its own verbs and its
// own mapping from errors to HTTP statuses.
package adminsock
