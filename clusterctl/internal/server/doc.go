// Package server assembles clusterctl: its configuration, the cluster
// state machine, the internal HTTP API that cloudctl and the nodes call
// (SigV4, component keys only) and the admin socket, as a library with
// New, Start, Ready and Close so that tests run it in-process.
package server
