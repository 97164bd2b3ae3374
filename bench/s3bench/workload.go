package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// unit is what a workload's rate counts.
type unit int

const (
	mibPerS unit = iota // MiB/s
	opsPerS             // operations/s
)

// result is what a workload did.
type result struct {
	ops       int64
	bytes     int64
	elapsed   time.Duration
	errs      int64
	firstErr  error
	lat       []time.Duration // sorted
	serverCPU time.Duration   // 0 when the server is not ours
	clientCPU time.Duration
}

func (r result) rate(u unit) float64 {
	if r.elapsed <= 0 {
		return 0
	}
	if u == mibPerS {
		return mibPerSec(r.bytes, r.elapsed)
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

func (r result) percentile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))]
}

// opFunc is one operation of a workload: worker w's op number i. It
// returns the bytes it moved.
type opFunc func(ctx context.Context, w, i int) (int64, error)

// maxErrs stops a workload that keeps failing.
const maxErrs = 20

// drive runs op from conc workers until n operations are done (n > 0) or
// d has passed (d > 0), whichever is first.
func drive(ctx context.Context, conc, n int, d time.Duration, op opFunc) result {
	if n <= 0 && d <= 0 {
		return result{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		ops   atomic.Int64
		bytes atomic.Int64
		errs  atomic.Int64
		mu    sync.Mutex
		res   result
		wg    sync.WaitGroup
	)
	start := time.Now()
	var deadline time.Time
	if d > 0 {
		deadline = start.Add(d)
	}
	for w := range conc {
		wg.Go(func() {
			var lat []time.Duration
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if n > 0 && i >= n || !deadline.IsZero() && time.Now().After(deadline) {
					break
				}
				t := time.Now()
				b, err := op(ctx, w, i)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					mu.Lock()
					res.firstErr = cmp.Or(res.firstErr, err)
					mu.Unlock()
					if errs.Add(1) >= maxErrs {
						cancel()
					}
					continue
				}
				lat = append(lat, time.Since(t))
				ops.Add(1)
				bytes.Add(b)
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.ops, res.bytes, res.errs = ops.Load(), bytes.Load(), errs.Load()
	slices.Sort(res.lat)
	return res
}

// clientCPU is the CPU time s3bench has used so far.
func clientCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// spec is one S3 workload.
type spec struct {
	name   string
	conc   int
	n      int           // operations, or 0 to run for d
	d      time.Duration // time, or 0 to run n operations
	unit   unit
	op     opFunc
	target target
	base   func(diskResult) (float64, string) // the raw-disk figure to compare with, or nil
}

// group is workloads over one set of objects: the PUT that writes them
// and what reads them afterwards. The PUT runs whenever any of them is
// selected.
type group struct {
	put   spec
	reads []spec
	check func(ctx context.Context) error // sanity check before the reads
}

// suite runs the S3 workloads against one server.
type suite struct {
	c     *client
	p     plan
	o     options
	srv   *walrusProc // nil with -endpoint
	out   io.Writer
	stamp string // makes bucket names unique on a shared server

	mu      sync.Mutex
	written map[string][]string // bucket -> keys, for cleanup
}

func (s *suite) bucket(name string) string {
	if s.srv != nil {
		return "s3bench-" + name
	}
	return "s3bench-" + s.stamp + "-" + name
}

func (s *suite) selected(sp spec) bool { return s.o.run == nil || s.o.run.MatchString(sp.name) }

// runAll runs the selected workloads in order and returns their rows.
func (s *suite) runAll(ctx context.Context) ([]row, error) {
	s.written = map[string][]string{}
	for _, b := range []string{"data", "small"} {
		if err := s.c.createBucket(ctx, s.bucket(b)); err != nil {
			return nil, fmt.Errorf("create bucket: %w", err)
		}
		s.written[s.bucket(b)] = nil
	}
	var rows []row
	for _, g := range s.groups() {
		want := slices.ContainsFunc(append([]spec{g.put}, g.reads...), s.selected)
		if !want {
			continue
		}
		r, err := s.runOne(ctx, g.put, s.selected(g.put))
		if err != nil {
			return nil, err
		}
		if s.selected(g.put) {
			rows = append(rows, r)
		}
		if g.check != nil {
			if err := g.check(ctx); err != nil {
				return nil, err
			}
		}
		for _, sp := range g.reads {
			if !s.selected(sp) {
				continue
			}
			r, err := s.runOne(ctx, sp, true)
			if err != nil {
				return nil, err
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// runOne runs a workload, profiling the server around it with -profile
// when it is reported.
func (s *suite) runOne(ctx context.Context, sp spec, reported bool) (row, error) {
	fmt.Fprintf(s.out, "%s ... ", sp.name)
	profiling := reported && s.srv != nil && s.srv.debug != ""
	if profiling {
		if err := s.srv.startProfile(ctx); err != nil {
			return row{}, err
		}
	}
	cpu0, ccpu0 := s.srv.cpuTime(), clientCPU()
	res := drive(ctx, sp.conc, sp.n, sp.d, sp.op)
	res.serverCPU, res.clientCPU = s.srv.cpuTime()-cpu0, clientCPU()-ccpu0
	if profiling {
		path := filepath.Join(s.o.profile, slug(sp.name)+".pprof")
		if err := s.srv.stopProfile(ctx, path); err != nil {
			return row{}, err
		}
		defer fmt.Fprintf(s.out, "  profile: go tool pprof -top %s\n", path)
	}
	if err := ctx.Err(); err != nil {
		return row{}, err
	}
	fmt.Fprintln(s.out, describe(sp, res))
	if res.errs > 0 {
		fmt.Fprintf(s.out, "  %d errors, the first: %v\n", res.errs, res.firstErr)
	}
	if res.ops == 0 {
		return row{}, fmt.Errorf("%s: nothing succeeded: %w", sp.name, res.firstErr)
	}
	return row{spec: sp, res: res}, nil
}

// describe is the console line of a finished workload.
func describe(sp spec, r result) string {
	var b strings.Builder
	if sp.unit == mibPerS {
		fmt.Fprintf(&b, "%.0f MiB/s (%s in %d ops, %.2f s)", r.rate(mibPerS), sizeName(r.bytes&^(1<<20-1)), r.ops, r.elapsed.Seconds())
	} else {
		fmt.Fprintf(&b, "%.0f ops/s (%d ops, %.2f s)", r.rate(opsPerS), r.ops, r.elapsed.Seconds())
	}
	fmt.Fprintf(&b, "; latency p50 %s p99 %s", round(r.percentile(0.5)), round(r.percentile(0.99)))
	secs := r.elapsed.Seconds()
	if r.serverCPU > 0 {
		fmt.Fprintf(&b, "; server %.2f CPUs", r.serverCPU.Seconds()/secs)
	}
	fmt.Fprintf(&b, ", client %.2f CPUs", r.clientCPU.Seconds()/secs)
	return b.String()
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Microsecond:
		return d.Round(10 * time.Microsecond)
	}
	return d
}

// slug turns a workload name into a file name.
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// groups lists the workloads, in the order they run.
func (s *suite) groups() []group {
	p := s.p
	medium := int64(1 << 20)
	data, small := s.bucket("data"), s.bucket("small")
	var (
		smallKeys atomic.Int64 // 1 + the highest 4 KiB object written
		smallMu   sync.Mutex
		smallDone = map[int]bool{} // the 4 KiB objects written
	)

	putBase := func(d diskResult) (float64, string) { return d.write(), "raw write + fsync" }
	getBase := func(d diskResult) (float64, string) { return d.read(), "raw read" + cacheNote(d.resident()) }
	largePut := target{
		desc: "≥ 300 MiB/s and ≥ 70% of raw write",
		met:  func(v, base float64) bool { return v >= 300 && v >= 0.7*base },

		needsBase: true,
	}
	largeGet := target{desc: "≥ 1,200 MiB/s", met: func(v, _ float64) bool { return v >= 1200 }}

	// objects makes a PUT and a GET of n objects of size from conc clients.
	objects := func(prefix string, size int64, n, conc, passes int, put, get target) group {
		key := func(i int) string { return fmt.Sprintf("%s/%06d", prefix, i%n) }
		return group{
			put: spec{
				name: fmt.Sprintf("PUT %s objects, %s", sizeName(size), clients(conc)),
				conc: conc, n: n, unit: mibPerS, target: put, base: putBase,
				op: func(ctx context.Context, _, i int) (int64, error) {
					k := key(i)
					if err := s.c.put(ctx, data, k, size); err != nil {
						return 0, err
					}
					s.remember(data, k)
					return size, nil
				},
			},
			reads: []spec{{
				name: fmt.Sprintf("GET %s objects, %s", sizeName(size), clients(conc)),
				conc: conc, n: n * passes, unit: mibPerS, target: get, base: getBase,
				op: s.getOp(data, key, conc),
			}},
		}
	}

	smallKey := func(i int) string { return fmt.Sprintf("small/%08d", i) }
	randomSmall := func() string { return smallKey(rand.IntN(int(smallKeys.Load()))) }
	return []group{
		objects("m16", medium, p.medium16, 16, p.getPasses, target{}, target{}),
		objects("m1", medium, p.medium1, 1, p.getPasses, target{}, target{}),
		objects("l1", p.largeSize, p.large1, 1, 1, largePut, largeGet),
		objects("l4", p.largeSize, p.large4, 4, 1, largePut, largeGet),
		{
			put: spec{
				name: "PUT 4 KiB objects, 16 clients", conc: smallClients, d: p.smallFor, unit: opsPerS,
				target: target{desc: "> 2,000/s", met: func(v, _ float64) bool { return v > 2000 }},
				base:   func(d diskResult) (float64, string) { return d.smallWrites, "raw 4 KiB files + fsync" },
				op: func(ctx context.Context, _, i int) (int64, error) {
					k := smallKey(i)
					if err := s.c.put(ctx, small, k, smallSize); err != nil {
						return 0, err
					}
					s.remember(small, k)
					smallMu.Lock()
					smallDone[i] = true
					smallMu.Unlock()
					// Keys are numbered in order of issue; the highest
					// done so far bounds what the reads pick from.
					for {
						n := smallKeys.Load()
						if int64(i) < n || smallKeys.CompareAndSwap(n, int64(i)+1) {
							break
						}
					}
					return smallSize, nil
				},
			},
			check: func(ctx context.Context) error {
				// LIST needs more than 100 keys; a slow PUT may have
				// written fewer in its time. Top up, untimed.
				for i := int(smallKeys.Load()); i < 200; i++ {
					if err := s.c.put(ctx, small, smallKey(i), smallSize); err != nil {
						return err
					}
					s.remember(small, smallKey(i))
					smallDone[i] = true
					smallKeys.Store(int64(i) + 1)
				}
				// Fill the gaps a failed PUT, or one issued as time ran
				// out, left below the highest, so that every read hits.
				for i := range int(smallKeys.Load()) {
					if smallDone[i] {
						continue
					}
					if err := s.c.put(ctx, small, smallKey(i), smallSize); err != nil {
						return err
					}
					s.remember(small, smallKey(i))
				}
				n, err := s.c.listCount(ctx, small, smallKey(0), 100)
				if err != nil {
					return err
				}
				if n != 100 {
					return fmt.Errorf("ListObjectsV2 max-keys=100 returned %d keys", n)
				}
				return nil
			},
			reads: []spec{
				{
					name: "GET 4 KiB objects, 16 clients", conc: smallClients, d: p.smallFor, unit: opsPerS,
					target: target{desc: "> 3,000/s", met: func(v, _ float64) bool { return v > 3000 }},
					base:   func(d diskResult) (float64, string) { return d.smallReads, "raw 4 KiB open+read" },
					op:     s.getOp(small, func(int) string { return randomSmall() }, smallClients),
				},
				{
					name: "HEAD 4 KiB objects, 16 clients", conc: smallClients, d: p.smallFor, unit: opsPerS,
					op: func(ctx context.Context, _, _ int) (int64, error) {
						return 0, s.c.head(ctx, small, randomSmall())
					},
				},
				{
					name: "LIST 4 KiB objects, 100 a page (ListObjectsV2), 16 clients", conc: smallClients, d: p.smallFor, unit: opsPerS,
					op: func(ctx context.Context, _, _ int) (int64, error) {
						// Start after a random key, never within the last
						// 100, so that every page is full.
						n := int(smallKeys.Load()) - 100
						return 0, s.c.list(ctx, small, smallKey(rand.IntN(n)), 100)
					},
				},
			},
		},
	}
}

// getOp reads key(i) through a buffer per worker.
func (s *suite) getOp(bucket string, key func(i int) string, conc int) opFunc {
	bufs := make([][]byte, conc)
	for w := range bufs {
		bufs[w] = make([]byte, 256<<10)
	}
	return func(ctx context.Context, w, i int) (int64, error) {
		return s.c.get(ctx, bucket, key(i), bufs[w])
	}
}

// remember notes a key written, for the cleanup of a shared server.
func (s *suite) remember(bucket, key string) {
	if s.srv != nil {
		return // walrus's data directory is removed instead
	}
	s.mu.Lock()
	s.written[bucket] = append(s.written[bucket], key)
	s.mu.Unlock()
}

// cleanup deletes what the run wrote to a server that is not ours.
func (s *suite) cleanup(ctx context.Context) {
	for bucket, keys := range s.written {
		slices.Sort(keys)
		keys = slices.Compact(keys)
		res := drive(ctx, 16, len(keys), 0, func(ctx context.Context, _, i int) (int64, error) {
			return 0, s.c.del(ctx, bucket, keys[i])
		})
		if res.errs > 0 {
			fmt.Fprintf(s.out, "cleanup: %d errors deleting from %s, the first: %v\n", res.errs, bucket, res.firstErr)
		}
		if err := s.c.deleteBucket(ctx, bucket); err != nil {
			fmt.Fprintf(s.out, "cleanup: %v\n", err)
		}
	}
}
