// Command nodectl is the node controller: one per hypervisor host, it
// runs the instances its cluster places on it.
//
//	nodectl serve [-config FILE] [-listen ADDR]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/koala-cloud/koala/nodectl/internal/server"
	"github.com/koala-cloud/koala/pkg/config"
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

// loadConfig reads the configuration named by -config, $NODECTL_CONFIG or
// var/nodectl/config.json when it exists, or returns the defaults.
func loadConfig(given string) (server.Config, error) {
	path := config.Path(given, "NODECTL_CONFIG", "var/nodectl/config.json")
	if path == "" {
		return server.Defaults(), nil
	}
	return server.Load(path)
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cfgPath := fl.String("config", "", "configuration file (JSON)")
	listen := fl.String("listen", "", "listen address, overrides the configuration")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "nodectl:", err)
		return 1
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	log, err := daemon.Logger(stderr, cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(stderr, "nodectl:", err)
		return 1
	}
	srv, err := server.New(cfg, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	return daemon.Run(ctx, "nodectl", srv, log)
}
