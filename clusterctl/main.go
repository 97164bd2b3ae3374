// Command clusterctl is the cluster controller of one availability zone:
// the node registry, placement of instances on nodes, MAC/IP leases and
// resource accounting.
//
//	clusterctl serve [-config FILE] [-listen ADDR]
//	clusterctl node register NAME URL [-config FILE]
//	clusterctl node deregister NAME [-config FILE]
//	clusterctl node list [-config FILE]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/koala-cloud/koala/clusterctl/internal/admin"
	"github.com/koala-cloud/koala/clusterctl/internal/server"
	"github.com/koala-cloud/koala/pkg/daemon"
)

const usage = `usage:
  clusterctl serve [-config FILE] [-listen ADDR]
  clusterctl node register NAME URL [-config FILE]
  clusterctl node deregister NAME [-config FILE]
  clusterctl node list [-config FILE]

FILE defaults to $CLUSTERCTL_CONFIG, else var/clusterctl/config.json when it
exists. The node verbs go through the running daemon's admin socket
(data_dir/admin.sock), else open its database directly.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) >= 1 && args[0] == "serve":
		return serve(ctx, args[1:], stderr)
	case len(args) >= 1 && args[0] == "node":
		return nodeCommand(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return 2
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	return daemon.ServeCommand[server.Config, *server.Server]{
		Name: "clusterctl", Load: server.Find, New: server.New,
		Level: func(c server.Config) string { return c.LogLevel },
		Overrides: []daemon.Override[server.Config]{
			daemon.ListenOverride(func(c *server.Config) *string { return &c.Listen }),
		},
	}.Run(ctx, args, stderr)
}

// backend is what the node verbs need: the admin service of a running
// clusterctl (over its socket), or the cluster over its database.
type backend = admin.Service

// openBackend reaches the running daemon, or opens its database when no
// daemon answers on the socket. close releases what it opened.
func openBackend(ctx context.Context, cfg server.Config, stderr io.Writer) (b backend, close func(), err error) {
	if c, err := admin.Dial(ctx, server.SocketPath(cfg.DataDir)); err == nil {
		return c, func() {}, nil
	}
	log, err := daemon.Logger(stderr, "warn")
	if err != nil {
		log = slog.New(slog.DiscardHandler)
	}
	return server.OpenOffline(cfg, log)
}

// nodeCommand runs `clusterctl node ...`.
func nodeCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("node", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cfgPath := fl.String("config", "", "configuration file (JSON)")
	// Verbs and names come first, flags after them.
	var words []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		words, args = append(words, args[0]), args[1:]
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	valid := (len(words) == 3 && words[0] == "register") || (len(words) == 2 && words[0] == "deregister") ||
		(len(words) == 1 && words[0] == "list")
	if !valid {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "clusterctl:", err)
		return 1
	}
	cfg, err := server.Find(*cfgPath)
	if err != nil {
		return fail(err)
	}
	b, closeBackend, err := openBackend(ctx, cfg, stderr)
	if err != nil {
		return fail(err)
	}
	defer closeBackend()
	switch words[0] {
	case "register":
		n, err := b.RegisterNode(ctx, words[1], words[2])
		if err != nil {
			return fail(err)
		}
		printJSON(stdout, n)
	case "deregister":
		if err := b.DeregisterNode(ctx, words[1]); err != nil {
			return fail(err)
		}
	case "list":
		ns, err := b.Nodes(ctx)
		if err != nil {
			return fail(err)
		}
		printJSON(stdout, ns)
	}
	return 0
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
