// Package server assembles nodectl, the node controller: its
// configuration, the hypervisor driver the configuration names, the image
// cache fed from walrus, the instance manager, the status pusher that
// reports to the cluster, and the signed internal API behind an HTTP
// listener, as a library with New, Start, Ready and Close so that tests
// run it in-process.
package server
