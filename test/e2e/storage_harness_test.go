//go:build e2e

package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// storageNet is a storage network on this host: a bridge, ebs on one
// veth link to it, and a link per node (each with its own MAC, as nodes
// on separate hosts would have).
type storageNet struct {
	prefix  string // names: <prefix>br, <prefix>e, <prefix>n1, ...
	bridge  string
	links   int
	ebs     *daemon
	dataDir string
}

func newStorageNet(t *testing.T, prefix string) *storageNet {
	t.Helper()
	s := &storageNet{prefix: prefix, bridge: prefix + "br"}
	mustIP(t, "link", "add", s.bridge, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", s.bridge).Run() })
	mustIP(t, "link", "set", s.bridge, "up")
	return s
}

func mustIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// link adds a veth link to the bridge and returns its free end.
func (s *storageNet) link(t *testing.T) string {
	t.Helper()
	s.links++
	end, peer := fmt.Sprintf("%sn%d", s.prefix, s.links), fmt.Sprintf("%sp%d", s.prefix, s.links)
	mustIP(t, "link", "add", end, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { exec.Command("ip", "link", "del", end).Run() })
	mustIP(t, "link", "set", peer, "master", s.bridge, "up")
	mustIP(t, "link", "set", end, "up")
	return end
}

// startEBS starts ebs on a link of its own, with a component key from c,
// keeping snapshots in walrus w.
func (s *storageNet) startEBS(t *testing.T, c *cloudctl, w *walrus) {
	t.Helper()
	iface := s.link(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "ebs-key.json")
	c.adminRun(t, []string{"component-key", "ebs-" + s.prefix}, "-o", key)
	cfg := filepath.Join(dir, "ebs.json")
	s.dataDir = filepath.Join(dir, "data")
	s.ebs = newDaemon(t, "ebs", daemonBinary(t, "ebs"), filepath.Join(dir, "ebs.log"), "serve", "-config", cfg)
	s.ebs.startOnFreePort(func(int) error {
		return writeJSON(cfg, ebsConfig{Listen: s.ebs.addr, DataDir: s.dataDir, Interface: iface, Shelf: 2,
			CloudctlURL: c.endpoint, WalrusURL: w.endpoint, ComponentCredentials: key})
	})
}
