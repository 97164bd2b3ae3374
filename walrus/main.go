// Command walrus is the S3-compatible object store of the cloud.
//
//	walrus serve [-config FILE] [-listen ADDR] [-data DIR]
//	walrus admin account create NAME [-email ADDR] [-config FILE]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/koala-cloud/koala/pkg/daemon"
	"github.com/koala-cloud/koala/walrus/internal/accounts"
	"github.com/koala-cloud/koala/walrus/internal/server"
)

const usage = `usage:
  walrus serve [-config FILE] [-listen ADDR] [-data DIR]
  walrus admin account create NAME [-email ADDR] [-config FILE]

FILE defaults to $WALRUS_CONFIG, else var/walrus/config.json when it exists.
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
	case len(args) >= 3 && args[0] == "admin" && args[1] == "account" && args[2] == "create":
		return createAccount(args[3:], stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return 2
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	return daemon.ServeCommand[server.Config, *server.Server]{
		Name: "walrus", Load: server.Find, New: server.New,
		Level: func(c server.Config) string { return c.LogLevel },
		Overrides: []daemon.Override[server.Config]{
			daemon.ListenOverride(func(c *server.Config) *string { return &c.Listen }),
			{Flag: "data", Usage: "data directory, overrides the configuration",
				Field: func(c *server.Config) *string { return &c.DataDir }},
		},
	}.Run(ctx, args, stderr)
}

func createAccount(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("admin account create", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cfgPath := fl.String("config", "", "configuration file (JSON)")
	email := fl.String("email", "", "the account's email address")
	// The name comes first, flags after it, as in the usage line.
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		fmt.Fprint(stderr, usage)
		return 2
	}
	name := args[0]
	if err := fl.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := server.Find(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "walrus:", err)
		return 1
	}
	if cfg.CloudctlURL != "" {
		fmt.Fprintln(stderr, "walrus: accounts belong to cloudctl here; use: cloudctl admin account create", name)
		return 1
	}
	acct, err := accounts.Create(cfg.AccountsFile, name, *email)
	if err != nil {
		fmt.Fprintln(stderr, "walrus:", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(acct)
	return 0
}
