// Package server assembles cloudctl: its configuration, database, the EC2
// Query API, the internal API other daemons call, and the admin socket, as
// a library with New, Start, Ready and Close.
package server
