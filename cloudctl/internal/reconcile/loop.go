package reconcile

import (
	"context"
	"time"
)

// Loop runs passes of one controller. Kick may be called from any
// goroutine; Run from one.
type Loop struct {
	kick chan struct{}
}

// New returns a loop.
func New() *Loop { return &Loop{kick: make(chan struct{}, 1)} }

// Kick asks for a pass soon; it never blocks, and kicks that come while
// one is already asked for are one.
func (l *Loop) Kick() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Run calls pass at once and then again after each Kick or when the
// pause pass returned has passed, until ctx ends.
func (l *Loop) Run(ctx context.Context, pass func(context.Context) time.Duration) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		t.Reset(pass(ctx))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.kick:
		}
	}
}
