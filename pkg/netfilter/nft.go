package netfilter

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Runner applies nft scripts by running the nft command. The zero value
// runs "nft" from PATH in the caller's network namespace.
type Runner struct {
	// Path is the nft binary; empty means "nft" looked up in PATH.
	Path string
	// Netns, when set, names a network namespace (as `ip netns` knows it)
	// to run nft in, through `ip netns exec`.
	Netns string
}

// Apply loads script (from Render or RemoveScript) in one transaction:
// either all of it takes effect or none does. Applying the same script
// again leaves the same ruleset.
func (r Runner) Apply(ctx context.Context, script string) error {
	if err := r.run(ctx, script, "-f", "-"); err != nil {
		return fmt.Errorf("apply nft script: %w", err)
	}
	return nil
}

// Check parses and validates script against the kernel without applying
// it (nft --check).
func (r Runner) Check(ctx context.Context, script string) error {
	if err := r.run(ctx, script, "--check", "-f", "-"); err != nil {
		return fmt.Errorf("check nft script: %w", err)
	}
	return nil
}

// Remove deletes the package's tables, and nothing else. Removing tables
// that do not exist is not an error.
func (r Runner) Remove(ctx context.Context, bridge string) error {
	if err := r.run(ctx, RemoveScript(bridge), "-f", "-"); err != nil {
		return fmt.Errorf("remove nft tables: %w", err)
	}
	return nil
}

func (r Runner) run(ctx context.Context, stdin string, args ...string) error {
	nft := r.Path
	if nft == "" {
		nft = "nft"
	}
	var cmd *exec.Cmd
	if r.Netns != "" {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", r.Netns, nft}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, nft, args...)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return fmt.Errorf("%s: %w: %s", cmd, err, msg)
		}
		return fmt.Errorf("%s: %w", cmd, err)
	}
	return nil
}
