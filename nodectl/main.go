// Command nodectl is the node controller: one per hypervisor host, it
// runs the instances its cluster places on it.
//
//	nodectl serve [-config FILE] [-listen ADDR]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/koala-cloud/koala/nodectl/internal/server"
	"github.com/koala-cloud/koala/pkg/daemon"
)

const usage = `usage:
  nodectl serve [-config FILE] [-listen ADDR]

FILE defaults to $NODECTL_CONFIG, else var/nodectl/config.json when it exists.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) >= 1 && args[0] == "serve" {
		return serve(ctx, args[1:], stderr)
	}
	fmt.Fprint(stderr, usage)
	return 2
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	return daemon.ServeCommand[server.Config, *server.Server]{
		Name: "nodectl", Load: server.Find, New: server.New, Usage: usage,
		Level: func(c server.Config) string { return c.LogLevel },
		Overrides: []daemon.Override[server.Config]{
			daemon.ListenOverride(func(c *server.Config) *string { return &c.Listen }),
		},
	}.Run(ctx, args, stderr)
}
