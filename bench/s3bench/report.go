package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// target is a workload's goal.
type target struct {
	desc string
	// met says whether a rate meets the goal, given the baseline (0 when
	// it was not measured); nil means report only.
	met func(v, base float64) bool
	// needsBase marks goals relative to the baseline.
	needsBase bool
}

// row is a finished workload.
type row struct {
	spec spec
	res  result
}

// report is one run.
type report struct {
	started, finished time.Time
	machine           machine
	quick             bool
	server            string // column name: walrus, or the -name of another server
	endpoint          string
	source            string     // the walrus source built, when s3bench started walrus
	disk              diskResult // zero with -baseline=false
	rows              []row
}

func clients(n int) string {
	if n == 1 {
		return "1 client"
	}
	return strconv.Itoa(n) + " clients"
}

func cacheNote(resident float64) string {
	return fmt.Sprintf(", page cache (%.0f%% resident)", 100*resident)
}

// block renders the run as the markdown that goes into the report file.
func (r report) block() string {
	var b strings.Builder
	b.WriteString(runStart + "\n")
	fmt.Fprintf(&b, "### %s: %s", r.started.Format("2006-01-02 15:04 UTC"), r.server)
	if r.quick {
		b.WriteString(" (quick mode, scaled down)")
	}
	b.WriteString("\n\n")
	m := r.machine
	fmt.Fprintf(&b, "- Machine: %s, %d CPUs (%s), %s memory, Linux %s, %s\n", m.host, m.cpus, m.cpuModel, gib(m.memory), m.kernel, m.goVersion)
	fmt.Fprintf(&b, "- Data directory: `%s` on %s\n", m.dir, m.filesystem())
	fmt.Fprintf(&b, "- Server: %s at %s, on the same machine as the client", r.server, r.endpoint)
	if r.source != "" {
		fmt.Fprintf(&b, ", built from %s", r.source)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "- Load average when it started: %s; took %s\n\n", m.load, r.finished.Sub(r.started).Round(time.Second))

	fmt.Fprintf(&b, "| workload | %s | baseline | ratio | target |\n", r.server)
	b.WriteString("|---|---:|---|---:|---|\n")
	met, unknown, total := 0, 0, 0
	for _, w := range r.rows {
		sp, res := w.spec, w.res
		v := res.rate(sp.unit)
		val := rateText(v, sp.unit)
		if res.errs > 0 {
			val += fmt.Sprintf(" (%d errors)", res.errs)
		}
		baseText, ratio, base := "—", "—", 0.0
		if sp.base != nil && len(r.disk.seq) > 0 {
			var what string
			base, what = sp.base(r.disk)
			baseText = fmt.Sprintf("%s %s", rateText(base, sp.unit), what)
			if base > 0 {
				ratio = fmt.Sprintf("%.0f%%", 100*v/base)
			}
		}
		tgt := "—"
		if sp.target.met != nil {
			total++
			switch {
			case sp.target.needsBase && base == 0:
				unknown++
				tgt = sp.target.desc + ": **unknown** (no baseline)"
			case sp.target.met(v, base):
				met++
				tgt = sp.target.desc + ": **met**"
			default:
				tgt = sp.target.desc + ": **not met**"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", sp.name, val, baseText, ratio, tgt)
	}
	b.WriteString("\n")
	if d := r.disk; len(d.seq) > 0 {
		var writes, reads []string
		for _, s := range d.seq {
			writes = append(writes, num(s.writeMiBs))
			reads = append(reads, num(s.readMiBs))
		}
		cached := "all of it"
		if res := d.resident(); res < 0.995 {
			cached = fmt.Sprintf("only %.0f%% of it", 100*res)
		}
		fmt.Fprintf(&b, "Raw disk, same filesystem: %s written sequentially in 1 MiB writes then fsynced at %s MiB/s, "+
			"and read back at %s MiB/s (before the S3 workloads, then after; the baseline is the mean), with %s in the page cache: "+
			"the read is cache-to-cache, like walrus's GETs of objects it has just stored. "+
			"4 KiB files (create, write, fsync, close) from %d goroutines: %s/s; reading them back (open, read, close): %s/s.\n\n",
			sizeName(d.size), strings.Join(writes, " and "), strings.Join(reads, " and "), cached,
			smallClients, num(d.smallWrites), num(d.smallReads))
	}
	switch {
	case unknown > 0:
		fmt.Fprintf(&b, "Targets met: %d of %d; %d unknown without the raw-disk baseline.\n", met, total, unknown)
	case total > 0:
		fmt.Fprintf(&b, "Targets met: %d of %d.\n", met, total)
	}
	b.WriteString(runEnd + "\n")
	return b.String()
}

func rateText(v float64, u unit) string {
	if u == mibPerS {
		return num(v) + " MiB/s"
	}
	return num(v) + "/s"
}

// num writes v rounded, with thousands separators.
func num(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

const (
	introStart = "<!-- s3bench:intro -->"
	introEnd   = "<!-- /s3bench:intro -->"
	runStart   = "<!-- s3bench:run -->"
	runEnd     = "<!-- /s3bench:run -->"
	latestHead = "## Latest run"
	prevHead   = "## Previous runs"
)

const intro = introStart + `
# Benchmarks

` + "`bench/s3bench`" + ` measures walrus, the S3-compatible object store, next to the raw disk it
keeps its data on, in one run and on one filesystem.

Reproduce with ` + "`make bench`" + `, which runs ` + "`go run ./bench/s3bench -out docs/benchmarks.md`" + `: the new run
replaces "Latest run" below and the run that was there moves to the top of "Previous runs".
` + "`go run ./bench/s3bench -quick`" + ` is a smoke test of well under a minute;
` + "`-endpoint URL -access KEY -secret KEY -name minio`" + ` drives another S3 server with the same client,
for side-by-side numbers; ` + "`-profile DIR`" + ` writes a CPU profile of walrus per workload.

How it measures:

- Raw disk, in the directory that also holds walrus's data: a 1 GiB file written in 1 MiB writes
  and fsynced (the rate includes the fsync), then read back in 1 MiB reads, once before the S3
  workloads and once after; the baseline is the mean. Nothing is dropped from the page cache, so
  the read comes from memory, as walrus's GETs of objects it has just stored do; the table says
  how much of the file was resident. Small files: 16 goroutines create, write 4 KiB, fsync and
  close files for 5 s, then open, read and close them for 5 s.
- walrus is built from this tree and started as its own process with a fresh data directory and
  its default settings (info logging, one access-log line per request, to a file).
- The client is Go's net/http with one shared transport (keep-alive, no compression), signing
  with ` + "`pkg/sigv4`" + ` and UNSIGNED-PAYLOAD. PUT bodies are generated and GET bodies discarded as
  they stream, so no object is held in memory. Client and server share the machine's CPUs.
- 1 MiB objects: 512 from 16 clients and 128 from 1 client, each then read twice. 256 MiB
  objects: 4 from 1 client and 8 from 4 clients, each then read once. 4 KiB objects, 16 clients,
  5 s each: PUT, then GET and HEAD of random keys and ListObjectsV2 (max-keys=100, starting
  after a random key) over the bucket the PUTs filled.
- On ext4 without a journal, creating a file passes over every inode freed in the last minute or
  more, at a CPU cost (up to 7x slower creates here), so s3bench starts only 3 minutes after the
  previous run deleted its files (` + "`-settle`" + `). Other deletions on the machine still count.
- Ratio is the server's rate over the baseline's. Targets: large-object (256 MiB) PUT ≥ 300 MiB/s
  and ≥ 70% of the raw write, large-object GET ≥ 1,200 MiB/s, 4 KiB PUT > 2,000/s and GET
  > 3,000/s with 16 clients. The 1 MiB, HEAD and LIST rows are reported without a target.
` + introEnd + "\n"

var runRE = regexp.MustCompile(`(?s)` + regexp.QuoteMeta(runStart) + `.*?` + regexp.QuoteMeta(runEnd) + "\n?")

// mergeReport returns the report file with run as its latest run. old is
// the file as it was: its runs move under "Previous runs", newest first,
// and any text of its own outside the generated parts stays, after the
// introduction.
func mergeReport(old, run string) string {
	prev := runRE.FindAllString(old, -1)
	rest := runRE.ReplaceAllString(old, "")
	if i := strings.Index(rest, introStart); i >= 0 {
		if j := strings.Index(rest[i:], introEnd); j >= 0 {
			rest = rest[:i] + rest[i+j+len(introEnd):]
		}
	}
	var notes []string
	for _, l := range strings.Split(rest, "\n") {
		if t := strings.TrimSpace(l); t == latestHead || t == prevHead || t == "None yet." {
			continue
		}
		notes = append(notes, l)
	}
	var b strings.Builder
	b.WriteString(intro)
	if n := strings.TrimSpace(strings.Join(notes, "\n")); n != "" {
		b.WriteString("\n" + n + "\n")
	}
	b.WriteString("\n" + latestHead + "\n\n")
	b.WriteString(strings.TrimSpace(run) + "\n")
	b.WriteString("\n" + prevHead + "\n\n")
	if len(prev) == 0 {
		b.WriteString("None yet.\n")
	}
	for i, p := range prev {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(strings.TrimSpace(p) + "\n")
	}
	return b.String()
}

// writeReport puts run r at the top of the report file at path.
func writeReport(path string, r report) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(mergeReport(string(old), r.block())), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// machine is what the report says about where it ran.
type machine struct {
	host, cpuModel, kernel, goVersion string
	load                              string // 1, 5 and 15 minute load averages
	cpus                              int
	memory                            int64
	dir                               string
	fsType, fsDevice, fsMount, fsOpts string
	noJournal                         bool // ext4 without a journal
}

func describeMachine(dir string) machine {
	m := machine{cpus: runtime.NumCPU(), goVersion: runtime.Version(), dir: dir, cpuModel: "unknown CPU"}
	m.host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	m.load = loadAverage()
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m.cpuModel = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		kb, _ := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
		m.memory = kb << 10
	}
	m.fsType, m.fsDevice, m.fsMount, m.fsOpts = mountOf(dir)
	if m.fsType == "ext4" {
		// A journaled ext4 shows up in /proc/fs/jbd2 as <device>-<inode>.
		jbd, _ := filepath.Glob(filepath.Join("/proc/fs/jbd2", filepath.Base(m.fsDevice)+"-*"))
		m.noJournal = len(jbd) == 0
	}
	return m
}

// loadAverage is the 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func (m machine) filesystem() string {
	if m.fsType == "" {
		return "an unknown filesystem"
	}
	t := m.fsType
	if m.noJournal {
		t += " without a journal"
	}
	return fmt.Sprintf("%s (%s mounted at %s, %s)", t, m.fsDevice, m.fsMount, m.fsOpts)
}

// procField returns the value of the first "name: value" line of a /proc
// file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// mountOf finds the mount that holds dir in /proc/mounts.
func mountOf(dir string) (fsType, device, mount, opts string) {
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	data, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		mp := unescapeMount(f[1])
		if !within(dir, mp) || len(mp) < len(mount) {
			continue
		}
		// The last of equal mount points is the one on top.
		device, mount, fsType, opts = f[0], mp, f[2], f[3]
	}
	return
}

func within(dir, mount string) bool {
	return mount == "/" || dir == mount || strings.HasPrefix(dir, mount+"/")
}

// unescapeMount undoes /proc/mounts' octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
