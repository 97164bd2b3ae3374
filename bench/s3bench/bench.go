package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// options are s3bench's flags.
type options struct {
	out      string
	dir      string
	quick    bool
	baseline bool
	run      *regexp.Regexp

	endpoint, access, secret, region string
	name                             string

	walrus  string
	profile string
	keep    bool
	settle  time.Duration
}

// plan is how much each workload does.
type plan struct {
	rawSize   int64         // raw-disk sequential file
	smallFor  time.Duration // raw small files, and each 4 KiB workload
	medium16  int           // 1 MiB objects written by 16 clients
	medium1   int           // 1 MiB objects written by 1 client
	largeSize int64         // the "256 MiB" objects
	large1    int           // large objects written by 1 client
	large4    int           // large objects written by 4 clients
	getPasses int           // times each 1 MiB object is read
}

func fullPlan() plan {
	return plan{
		rawSize: 1 << 30, smallFor: 5 * time.Second,
		medium16: 512, medium1: 128, getPasses: 2,
		largeSize: 256 << 20, large1: 4, large4: 8,
	}
}

func quickPlan() plan {
	return plan{
		rawSize: 256 << 20, smallFor: time.Second,
		medium16: 64, medium1: 16, getPasses: 1,
		largeSize: 64 << 20, large1: 2, large4: 4,
	}
}

// run does one benchmark run and returns the process exit code.
func run(ctx context.Context, o options, stdout io.Writer) int {
	if err := bench(ctx, o, stdout); err != nil {
		fmt.Fprintln(os.Stderr, "s3bench:", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, o options, stdout io.Writer) error {
	if o.endpoint == "" && (o.access != "" || o.secret != "") {
		return errors.New("-access and -secret go with -endpoint")
	}
	if o.endpoint != "" && (o.access == "" || o.secret == "") {
		return errors.New("-endpoint needs -access and -secret")
	}
	if o.endpoint != "" && o.profile != "" {
		return errors.New("-profile profiles the walrus s3bench starts; it does not go with -endpoint")
	}
	p := fullPlan()
	if o.quick {
		p = quickPlan()
	}
	root, err := moduleRoot(ctx)
	if err != nil && (o.dir == "" || o.endpoint == "") {
		return err
	}
	if o.dir == "" {
		o.dir = filepath.Join(root, "var", "s3bench")
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return err
	}
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return err
	}
	m := describeMachine(o.dir)
	if m.fsType == "tmpfs" || m.fsType == "ramfs" {
		fmt.Fprintf(stdout, "warning: %s is on %s: the raw-disk numbers measure memory, not a disk\n", o.dir, m.fsType)
	}
	fmt.Fprintf(stdout, "s3bench: work directory %s (%s)\n", o.dir, m.filesystem())

	if err := settle(ctx, o, m, stdout); err != nil {
		return err
	}
	m.load = loadAverage()
	if !o.keep {
		// Runs last: marks when this run's files were deleted, for the next.
		defer os.WriteFile(filepath.Join(o.dir, cleanedMarker), nil, 0o600)
	}

	rep := report{started: time.Now().UTC(), machine: m, quick: o.quick, server: o.name}
	if o.baseline {
		if !o.keep {
			defer func() {
				if err := removeRaw(o.dir); err != nil {
					fmt.Fprintln(stdout, "s3bench: remove raw-disk files:", err)
				}
			}()
		}
		if rep.disk, err = measureDisk(ctx, o.dir, p, stdout); err != nil {
			return fmt.Errorf("raw disk: %w", err)
		}
	}

	var c *client
	var srv *walrusProc
	if o.endpoint != "" {
		u, err := url.Parse(o.endpoint)
		if err != nil || u.Host == "" {
			return fmt.Errorf("-endpoint %q is not a URL", o.endpoint)
		}
		if rep.server == "" {
			rep.server = u.Host
		}
		rep.endpoint = strings.TrimRight(o.endpoint, "/")
		c = newClient(rep.endpoint, o.access, o.secret, o.region, 32)
	} else {
		if rep.server == "" {
			rep.server = "walrus"
		}
		rep.source = sourceVersion(ctx, root)
		srv, err = startWalrus(ctx, root, o, stdout)
		if err != nil {
			return err
		}
		defer srv.stop(stdout, o.keep)
		rep.endpoint = srv.endpoint
		c = newClient(srv.endpoint, srv.access, srv.secret, o.region, 32)
	}
	defer c.close()

	s := &suite{c: c, p: p, o: o, srv: srv, out: stdout, stamp: time.Now().UTC().Format("20060102-150405")}
	rep.rows, err = s.runAll(ctx)
	if err != nil {
		return err
	}
	if o.baseline {
		// Again, after: the disk of a shared machine is not equally fast
		// all the time, and the baseline is the mean.
		if err := rep.disk.measureSeq(ctx, o.dir, stdout); err != nil {
			return fmt.Errorf("raw disk: %w", err)
		}
	}
	if o.endpoint != "" {
		s.cleanup(ctx)
	}
	rep.finished = time.Now().UTC()

	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, rep.block())
	if o.out != "" {
		if err := writeReport(o.out, rep); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\ns3bench: wrote %s\n", o.out)
	}
	if srv != nil {
		fmt.Fprintf(stdout, "s3bench: walrus log in %s\n", srv.logPath)
	}
	return nil
}

// cleanedMarker is a file in the work directory whose time is when the
// last run deleted its files.
const cleanedMarker = "last-cleanup"

// settle waits until o.settle has passed since the last run deleted its
// files, on ext4 without a journal: there, creating an inode passes over
// every inode freed in the last minute or more, at a CPU cost that made
// creating a file up to seven times slower in our measurements, and that
// would be charged to both the raw-disk baseline and walrus. -quick only
// warns.
func settle(ctx context.Context, o options, m machine, out io.Writer) error {
	if !m.noJournal || o.settle <= 0 {
		return nil
	}
	st, err := os.Stat(filepath.Join(o.dir, cleanedMarker))
	if err != nil {
		return nil
	}
	wait := o.settle - time.Since(st.ModTime())
	if wait <= 0 {
		return nil
	}
	wait = wait.Round(time.Second)
	if o.quick {
		fmt.Fprintf(out, "warning: the last run deleted its files less than %s ago; on ext4 without a journal that slows down creating files for a while\n", o.settle)
		return nil
	}
	fmt.Fprintf(out, "s3bench: waiting %s: the last run deleted its files recently, and ext4 without a journal creates files slowly for a while after (-settle 0 skips this)\n", wait)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

// moduleRoot is the directory of the main module s3bench runs in.
func moduleRoot(ctx context.Context) (string, error) {
	goBin, err := goTool()
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the koala module: run s3bench from the repository")
	}
	return filepath.Dir(mod), nil
}

// sourceVersion names the walrus source s3bench builds: the commit, and
// whether walrus/ or pkg/ differ from it.
func sourceVersion(ctx context.Context, root string) string {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	head, err := git("rev-parse", "--short", "HEAD")
	if err != nil {
		return "not a git commit"
	}
	if st, err := git("status", "--porcelain", "--", "walrus", "pkg"); err == nil && st != "" {
		return "commit " + head + " with uncommitted changes in walrus/ or pkg/"
	}
	return "commit " + head
}

// goTool finds the go command: $GOROOT/bin/go, else go on $PATH.
func goTool() (string, error) {
	if r := os.Getenv("GOROOT"); r != "" {
		if p := filepath.Join(r, "bin", "go"); fileExists(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is not on PATH: %w", err)
	}
	return p, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
