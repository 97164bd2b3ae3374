//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemon is one server process under test (walrus, cloudctl): bin run with
// args, listening on 127.0.0.1:port, logging to logPath and answering
// GET /_health once it is ready.
type daemon struct {
	t        *testing.T
	name     string // in the log's markers and in errors
	bin      string
	args     []string
	addr     string // 127.0.0.1:PORT
	port     string
	endpoint string // http://127.0.0.1:PORT
	logPath  string

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	log    *os.File
}

// newDaemon returns a daemon, not yet started, that runs bin with args and
// appends its output to logPath. It is stopped when the test ends; if the
// test failed, the test log gets the tail of the daemon's log.
func newDaemon(t *testing.T, name, bin, logPath string, args ...string) *daemon {
	d := &daemon{t: t, name: name, bin: bin, args: args, logPath: logPath}
	t.Cleanup(func() {
		d.stop()
		if d.log != nil {
			d.log.Close()
		}
		if t.Failed() {
			t.Logf("%s log (%s), last lines:\n%s", name, logPath, tail(logPath, 60))
		}
	})
	return d
}

// setPort makes d's address 127.0.0.1:port; its configuration must say
// the same.
func (d *daemon) setPort(port string) {
	d.port = port
	d.addr = net.JoinHostPort("127.0.0.1", port)
	d.endpoint = "http://" + d.addr
}

// startOnFreePort starts d on a free port, calling configure first to
// write d's configuration for it (attempt counts from 0). Another process
// may take the port between the probe and d's listen, so it tries three
// ports; it fails the test if d does not start.
func (d *daemon) startOnFreePort(configure func(attempt int) error) {
	d.t.Helper()
	var err error
	for attempt := range 3 {
		var port string
		if port, err = freePort(); err != nil {
			d.t.Fatal(err)
		}
		d.setPort(port)
		if err = configure(attempt); err != nil {
			d.t.Fatal(err)
		}
		if err = d.start(); err == nil {
			return
		}
		if !strings.Contains(tail(d.logPath, 20), "address already in use") {
			break
		}
	}
	d.t.Fatalf("start %s: %v", d.name, err)
}

// start runs d and waits until /_health answers.
func (d *daemon) start() error {
	if d.log == nil {
		f, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		d.log = f
	}
	fmt.Fprintf(d.log, "=== e2e: starting %s on %s at %s\n", d.name, d.addr, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(d.bin, d.args...)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	// If the test binary dies, the daemon goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", d.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	d.cmd, d.exited = cmd, exited

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(d.endpoint + "/_health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			d.cmd = nil
			return fmt.Errorf("%s exited before it was ready (%v); log:\n%s", d.name, cmd.ProcessState, tail(d.logPath, 20))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 60s: last /_health: %v", d.name, err)
		}
	}
}

// stop ends d: SIGTERM, then SIGKILL if it has not exited in 15s.
func (d *daemon) stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.t.Errorf("%s did not exit 15s after SIGTERM; killing it", d.name)
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	fmt.Fprintf(d.log, "=== e2e: %s stopped: %v\n", d.name, d.cmd.ProcessState)
	d.cmd = nil
}

// kill9 kills d with SIGKILL and waits for it to be gone.
func (d *daemon) kill9() {
	d.t.Helper()
	if d.cmd == nil {
		d.t.Fatalf("kill9: %s is not running", d.name)
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
	fmt.Fprintf(d.log, "=== e2e: %s killed with SIGKILL at %s\n", d.name, time.Now().Format(time.RFC3339Nano))
	d.cmd = nil
}

// restart starts d again on the same port and configuration, stopping it
// first if it runs.
func (d *daemon) restart() {
	d.t.Helper()
	d.stop()
	if err := d.start(); err != nil {
		d.t.Fatalf("restart %s: %v", d.name, err)
	}
}

// freePort returns a port on 127.0.0.1 that nothing listened on a moment
// ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

// writeJSON writes a daemon's JSON configuration file.
func writeJSON(path string, cfg any) error {
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
