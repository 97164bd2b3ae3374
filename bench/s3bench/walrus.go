package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// walrusProc is a walrus that s3bench started as a separate process.
type walrusProc struct {
	cmd            *exec.Cmd
	exited         chan error
	run            string // directory with the binaries, config and log
	data           string // walrus's data directory
	logPath        string
	endpoint       string
	access, secret string
	debug          string // profiling endpoint, with -profile
}

// profRunner is where the profiling runner appears to be, for -overlay.
const profRunner = "walrus/internal/s3benchprof"

// startWalrus builds walrus, gives it a fresh data directory under o.dir
// and an account, starts it and waits until it is healthy.
func startWalrus(ctx context.Context, root string, o options, out io.Writer) (*walrusProc, error) {
	w := &walrusProc{run: filepath.Join(o.dir, "walrus"), exited: make(chan error, 1)}
	w.data = filepath.Join(w.run, "data")
	w.logPath = filepath.Join(w.run, "walrus.log")
	if err := os.RemoveAll(w.run); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(w.run, 0o700); err != nil {
		return nil, err
	}
	bin := o.walrus
	if bin == "" {
		bin = filepath.Join(w.run, "walrus")
		fmt.Fprintln(out, "walrus: building ./walrus")
		if err := goBuild(ctx, root, bin, "./walrus"); err != nil {
			return nil, err
		}
	}
	serveBin, serveArgs := bin, []string{"serve"}
	if o.profile != "" {
		serveBin = filepath.Join(w.run, "walrusprof")
		fmt.Fprintln(out, "walrus: building the profiling runner")
		if err := buildProfRunner(ctx, root, w.run, serveBin); err != nil {
			return nil, err
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		w.debug = "127.0.0.1:" + strconv.Itoa(port)
		serveArgs = []string{"-debug", w.debug}
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return nil, err
		}
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(w.run, "config.json")
	cfg, _ := json.MarshalIndent(map[string]string{
		"listen":        "127.0.0.1:" + strconv.Itoa(port),
		"data_dir":      w.data,
		"accounts_file": filepath.Join(w.run, "accounts.json"),
		"region":        o.region,
	}, "", "  ")
	if err := os.WriteFile(cfgPath, append(cfg, '\n'), 0o600); err != nil {
		return nil, err
	}
	acct, err := exec.CommandContext(ctx, bin, "admin", "account", "create", "s3bench", "-config", cfgPath).Output()
	if err != nil {
		return nil, fmt.Errorf("walrus admin account create: %w", cmdErr(err))
	}
	var keys struct {
		Access string `json:"access_key_id"`
		Secret string `json:"secret_access_key"`
	}
	if err := json.Unmarshal(acct, &keys); err != nil || keys.Access == "" {
		return nil, fmt.Errorf("walrus admin account create printed %q", acct)
	}
	w.access, w.secret = keys.Access, keys.Secret

	logf, err := os.Create(w.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	w.cmd = exec.Command(serveBin, append(serveArgs, "-config", cfgPath)...)
	w.cmd.Stdout, w.cmd.Stderr = logf, logf
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start walrus: %w", err)
	}
	go func() { w.exited <- w.cmd.Wait() }()
	w.endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
	if err := w.waitHealthy(ctx, 30*time.Second); err != nil {
		w.stop(io.Discard, true)
		return nil, fmt.Errorf("%w (log: %s)", err, w.logPath)
	}
	fmt.Fprintf(out, "walrus: pid %d serving %s, data in %s\n", w.cmd.Process.Pid, w.endpoint, w.data)
	if w.debug != "" {
		fmt.Fprintf(out, "walrus: pprof at http://%s/debug/pprof/\n", w.debug)
	}
	return w, nil
}

func (w *walrusProc) waitHealthy(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.endpoint+"/_health", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-w.exited:
			w.exited <- err
			return fmt.Errorf("walrus exited before it was healthy: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("walrus not healthy after %s", limit)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends walrus with SIGTERM, or SIGKILL after 15 s, and removes its
// data and the binaries built for it unless keep; the log stays.
func (w *walrusProc) stop(out io.Writer, keep bool) {
	if w.cmd != nil && w.cmd.Process != nil {
		_ = w.cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-w.exited:
			if err != nil {
				fmt.Fprintf(out, "walrus: exited: %v\n", err)
			}
		case <-time.After(15 * time.Second):
			fmt.Fprintln(out, "walrus: no exit 15 s after SIGTERM; killing it")
			_ = w.cmd.Process.Kill()
			<-w.exited
		}
	}
	if keep {
		return
	}
	for _, p := range []string{w.data, filepath.Join(w.run, "walrus"), filepath.Join(w.run, "walrusprof")} {
		if err := os.RemoveAll(p); err != nil {
			fmt.Fprintf(out, "walrus: %v\n", err)
		}
	}
}

// cpuTime is the CPU time walrus has used so far, or 0 if it is unknown.
func (w *walrusProc) cpuTime() time.Duration {
	if w == nil || w.cmd == nil || w.cmd.Process == nil {
		return 0
	}
	return procCPU(w.cmd.Process.Pid)
}

// procCPU reads utime+stime of a process from /proc.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	const ticks = 100 // USER_HZ: 100 on every Linux port Go supports
	return time.Duration(ut+st) * time.Second / ticks
}

// startProfile starts a CPU profile of the profiling runner.
func (w *walrusProc) startProfile(ctx context.Context) error {
	resp, err := debugPost(ctx, "http://"+w.debug+"/cpu/start")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// stopProfile ends the CPU profile and writes it to path.
func (w *walrusProc) stopProfile(ctx context.Context, path string) error {
	resp, err := debugPost(ctx, "http://"+w.debug+"/cpu/stop")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func debugPost(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("profiling endpoint: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		resp.Body.Close()
		return nil, fmt.Errorf("profiling endpoint: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return resp, nil
}

func goBuild(ctx context.Context, root, out string, args ...string) error {
	goBin, err := goTool()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goBin, append([]string{"build", "-o", out}, args...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return nil
}

// buildProfRunner builds walrusprof/main.go as the main package of
// walrus/internal/s3benchprof, which does not exist on disk: -overlay adds
// it there, where Go lets it import walrus/internal/server.
func buildProfRunner(ctx context.Context, root, tmp, out string) error {
	src := filepath.Join(root, "bench", "s3bench", "walrusprof", "main.go")
	ov, _ := json.Marshal(map[string]map[string]string{
		"Replace": {filepath.Join(root, filepath.FromSlash(profRunner), "main.go"): src},
	})
	ovPath := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(ovPath, ov, 0o600); err != nil {
		return err
	}
	return goBuild(ctx, root, out, "-tags", "walrusprof", "-overlay", ovPath, "./"+profRunner)
}

// freePort asks the kernel for a free TCP port on the loopback interface.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// cmdErr adds a failed command's stderr to its error.
func cmdErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return err
}
