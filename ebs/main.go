// Command ebs is the storage controller: volumes as sparse files,
// exported over ATA-over-Ethernet to the nodes they are attached to.
//
//	ebs serve [-config FILE] [-listen ADDR]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/koala-cloud/koala/ebs/internal/server"
	"github.com/koala-cloud/koala/pkg/daemon"
)

const usage = `usage:
  ebs serve [-config FILE] [-listen ADDR]

FILE defaults to $EBS_CONFIG, else var/ebs/config.json when it exists.
AoE needs raw sockets: run ebs as root (or with CAP_NET_RAW).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) >= 1 && args[0] == "serve" {
		return daemon.ServeCommand[server.Config, *server.Server]{
			Name: "ebs", Load: server.Find, New: server.New,
			Level: func(c server.Config) string { return c.LogLevel },
			Overrides: []daemon.Override[server.Config]{
				daemon.ListenOverride(func(c *server.Config) *string { return &c.Listen }),
			},
		}.Run(ctx, args[1:], stderr)
	}
	fmt.Fprint(stderr, usage)
	return 2
}
