package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
)

// pusher reports the node's status to its cluster: shortly after each
// change (a burst of changes makes one push) and every heartbeat. One
// push runs at a time, on the pusher's own goroutine, so the manager
// never waits for the cluster; a failed push is retried at the next
// heartbeat, and failures are logged at most once per warnEvery.
type pusher struct {
	push     func(ctx context.Context, st api.NodeStatus) error
	status   func() api.NodeStatus
	changed  <-chan struct{}
	every    time.Duration // heartbeat
	debounce time.Duration // wait after a change for the burst to end
	timeout  time.Duration // of one push
	log      *slog.Logger

	failures int       // since the last success
	warned   time.Time // last failure logged
}

const warnEvery = time.Minute

// run pushes until ctx ends.
func (p *pusher) run(ctx context.Context) {
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	var settle <-chan time.Time // armed by a change
	p.once(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.changed:
			if settle == nil {
				settle = time.After(p.debounce)
			}
			continue
		case <-settle:
		case <-tick.C:
		}
		// A status taken now holds every change signalled so far.
		settle = nil
		p.once(ctx)
	}
}

// once makes one push.
func (p *pusher) once(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	err := p.push(pctx, p.status())
	cancel()
	switch {
	case ctx.Err() != nil:
	case err != nil:
		p.failures++
		if now := time.Now(); now.Sub(p.warned) >= warnEvery {
			p.warned = now
			p.log.Warn("status push to the cluster failed; retrying every heartbeat", "err", err, "failures", p.failures)
		}
	case p.failures > 0:
		p.log.Info("status push to the cluster works again", "failures", p.failures)
		p.failures, p.warned = 0, time.Time{}
	}
}
