package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
)

// Serve serves srv on ln in the background and delivers the end of the
// serving loop to done: nil once srv is shut down, else the error.
func Serve(srv *http.Server, ln net.Listener, done chan<- error) {
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
}

// ServeCommand is a daemon's `serve` subcommand: it reads -config (and
// the Overrides' flags), builds the logger at the configured level, makes
// the server with New and runs it.
type ServeCommand[C any, S Server] struct {
	// Name is the daemon's: it prefixes the errors printed before the
	// logger exists and names the stop line.
	Name string
	// Load reads the configuration at the -config path ("" when none is
	// given).
	Load func(path string) (C, error)
	// Level is the configured log level.
	Level func(C) string
	// New makes the server.
	New func(C, *slog.Logger) (S, error)
	// Overrides are string flags that replace a setting when given.
	Overrides []Override[C]
	// Usage, when set, is printed (exit code 2) if arguments follow the
	// flags; without it they are ignored.
	Usage string
}

// Override is a flag of `serve` that, when given, replaces the setting
// Field points to.
type Override[C any] struct {
	Flag, Usage string
	Field       func(*C) *string
}

// ListenOverride is the -listen flag.
func ListenOverride[C any](field func(*C) *string) Override[C] {
	return Override[C]{Flag: "listen", Usage: "listen address, overrides the configuration", Field: field}
}

// Run runs the subcommand with args, the arguments after `serve`, and
// returns the process exit code.
func (c ServeCommand[C, S]) Run(ctx context.Context, args []string, stderr io.Writer) int {
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cfgPath := fl.String("config", "", "configuration file (JSON)")
	values := make([]*string, len(c.Overrides))
	for i, o := range c.Overrides {
		values[i] = fl.String(o.Flag, "", o.Usage)
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if c.Usage != "" && fl.NArg() > 0 {
		fmt.Fprint(stderr, c.Usage)
		return 2
	}
	cfg, err := c.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, c.Name+":", err)
		return 1
	}
	for i, o := range c.Overrides {
		if *values[i] != "" {
			*o.Field(&cfg) = *values[i]
		}
	}
	log, err := Logger(stderr, c.Level(cfg))
	if err != nil {
		fmt.Fprintln(stderr, c.Name+":", err)
		return 1
	}
	srv, err := c.New(cfg, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	return Run(ctx, c.Name, srv, log)
}
