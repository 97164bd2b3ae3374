package blockdev

import (
	"context"
	"sync"
	"sync/atomic"
)

// EachChunk calls fn for every chunk index below chunks, from workers
// goroutines at once, lowest indices first; it stops at the first error
// (which it returns) or when ctx ends.
func EachChunk(ctx context.Context, chunks int64, workers int, fn func(ctx context.Context, i int64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range max(workers, 1) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < chunks && ctx.Err() == nil; i = next.Add(1) - 1 {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
