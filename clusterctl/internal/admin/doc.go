// Package admin serves clusterctl's node registry on the daemon's admin
// socket (data_dir/admin.sock, mode 0600: reaching it is the
// authorisation) and calls it from the CLI.
package admin
