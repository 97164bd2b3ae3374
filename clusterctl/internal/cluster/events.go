package cluster

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
)

// pusher sends instance changes up in batches: changes gathered for a
// debounce interval go in one push, one push at a time. A failed push
// keeps its changes for the next attempt, on the next change or poll;
// cloudctl also polls, so a lost push only delays.
type pusher struct {
	sink     EventSink
	zone     string
	log      *slog.Logger
	debounce time.Duration

	mu      sync.Mutex
	pending map[string]api.InstanceStatus
	kick    chan struct{}
}

// add queues statuses, keeping each instance's newest; signal starts a
// push.
func (p *pusher) add(sts []api.InstanceStatus, signal bool) {
	p.mu.Lock()
	for _, st := range sts {
		if old, ok := p.pending[st.ID]; !ok || st.Generation >= old.Generation {
			p.pending[st.ID] = st
		}
	}
	p.mu.Unlock()
	if signal {
		p.signal()
	}
}

func (p *pusher) signal() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// retry starts a push if changes wait.
func (p *pusher) retry() {
	p.mu.Lock()
	n := len(p.pending)
	p.mu.Unlock()
	if n > 0 {
		p.signal()
	}
}

func (p *pusher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.debounce):
		}
		p.mu.Lock()
		batch := make([]api.InstanceStatus, 0, len(p.pending))
		for _, st := range p.pending {
			batch = append(batch, st)
		}
		p.pending = map[string]api.InstanceStatus{}
		p.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		sort.Slice(batch, func(i, j int) bool { return batch[i].Generation < batch[j].Generation })
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := p.sink.PushEvents(pctx, p.zone, batch)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("push instance events", "count", len(batch), "err", err)
			}
			p.add(batch, false)
		}
	}
}
