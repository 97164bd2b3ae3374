// Package server assembles cloudctl: its configuration, database, the EC2
// Query API, the internal API other daemons call, the admin socket, and
// the instance metadata service on a listener of its own, as a library
// with New, Start, Ready and Close.
package server
