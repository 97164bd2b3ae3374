package network

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Host changes the host's network configuration.
type Host interface {
	// Run runs argv with stdin as its standard input and returns its
	// standard output; a failure's error carries its standard error.
	Run(ctx context.Context, stdin string, argv ...string) ([]byte, error)
	// WriteSysctl writes value to /proc/sys/<key>, e.g. key
	// net/ipv4/ip_forward.
	WriteSysctl(ctx context.Context, key, value string) error
}

// Exec is the Host that runs commands on this machine. Prefix, when set,
// is prepended to every command, e.g. ["ip", "netns", "exec", "ns1"] to
// work inside a network namespace (sysctls are then written by tee run
// through the prefix, as /proc/sys/net belongs to the writer's namespace).
type Exec struct {
	Prefix []string
}

// Run implements Host.
func (e Exec) Run(ctx context.Context, stdin string, argv ...string) ([]byte, error) {
	argv = append(append([]string(nil), e.Prefix...), argv...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return stdout.Bytes(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, msg)
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return stdout.Bytes(), nil
}

// WriteSysctl implements Host.
func (e Exec) WriteSysctl(ctx context.Context, key, value string) error {
	path := filepath.Join("/proc/sys", filepath.Clean("/"+key))
	if len(e.Prefix) > 0 {
		_, err := e.Run(ctx, value+"\n", "tee", path)
		return err
	}
	if err := os.WriteFile(path, []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
