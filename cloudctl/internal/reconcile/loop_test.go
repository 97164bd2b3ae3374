package reconcile

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoop(t *testing.T) {
	tests := []struct {
		name  string
		pause time.Duration
		kick  bool
	}{
		{"the pause passes", 10 * time.Millisecond, false},
		{"a kick", time.Hour, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := New()
			ctx, cancel := context.WithCancel(context.Background())
			var passes atomic.Int32
			second := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				l.Run(ctx, func(context.Context) time.Duration {
					if passes.Add(1) == 2 {
						close(second)
					}
					return tc.pause
				})
			}()
			if tc.kick {
				for passes.Load() == 0 {
					time.Sleep(time.Millisecond)
				}
				l.Kick()
				l.Kick() // never blocks
			}
			select {
			case <-second:
			case <-time.After(5 * time.Second):
				t.Fatal("no second pass")
			}
			cancel()
			<-done
		})
	}
}
