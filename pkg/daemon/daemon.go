package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
)

// Server is a daemon's server as STYLE.md shapes it.
type Server interface {
	Start(ctx context.Context) error
	Done() <-chan error
	Close() error
}

// Logger returns a text logger to w at level ("debug", "info", "warn",
// "error").
func Logger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log_level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// Run starts srv, serves until ctx ends or a serving loop fails, and
// closes it. It returns the process exit code.
func Run(ctx context.Context, name string, srv Server, log *slog.Logger) int {
	if err := srv.Start(ctx); err != nil {
		log.Error("start", "err", err)
		_ = srv.Close()
		return 1
	}
	select {
	case <-ctx.Done():
	case err := <-srv.Done():
		if err != nil {
			log.Error("serve", "err", err)
			_ = srv.Close()
			return 1
		}
	}
	log.Info(name + " stopping")
	if err := srv.Close(); err != nil {
		log.Error("stop", "err", err)
		return 1
	}
	return 0
}
