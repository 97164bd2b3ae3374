package server

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/koala-cloud/koala/clusterctl/internal/network"
)

func TestNetworkConfig(t *testing.T) {
	base := Defaults()
	base.Zone, base.CloudctlURL, base.ComponentCredentials = "z", "http://127.0.0.1:8773", "key.json"

	def, err := base.network()
	if err != nil {
		t.Fatal(err)
	}
	if def.Mode != network.System || def.Bridge != "koala0" || def.Metadata.IsValid() || def.DHCPDir != "" {
		t.Errorf("defaults: %+v", def)
	}

	static := base
	static.Network = NetworkConfig{Mode: "STATIC", Bridge: "br9", DNS: []string{"192.0.2.53"}, Metadata: "10.0.0.1:8780",
		MACMap: []string{"52:54:00:00:00:05=10.0.0.5"}}
	got, err := static.network()
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(filepath.Join(base.DataDir, "dhcp"))
	want := network.Config{Mode: network.Static, Bridge: "br9", Subnet: netip.MustParsePrefix("10.0.0.0/24"),
		Gateway: netip.MustParseAddr("10.0.0.1"), DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53")},
		Metadata: netip.MustParseAddrPort("10.0.0.1:8780"), DHCPDir: abs, DHCPUser: "root"}
	if got.String() != want.String() {
		t.Errorf("STATIC:\n got %+v\nwant %+v", got, want)
	}

	for _, tc := range []struct {
		name string
		n    NetworkConfig
		want string
	}{
		{"unknown mode", NetworkConfig{Mode: "VPC", Bridge: "koala0"}, "mode"},
		{"no bridge", NetworkConfig{Mode: "MANAGED"}, "bridge"},
		{"gateway in the pool", NetworkConfig{Mode: "MANAGED", Bridge: "koala0", Gateway: "10.0.0.7"}, "gateway"},
		{"gateway in the map", NetworkConfig{Mode: "STATIC", Bridge: "koala0", Gateway: "10.0.0.7", MACMap: []string{"52:54:00:00:00:07=10.0.0.7"}}, "gateway"},
		{"gateway outside the subnet", NetworkConfig{Mode: "STATIC", Bridge: "koala0", Gateway: "10.0.1.1", MACMap: []string{"52:54:00:00:00:07=10.0.0.7"}}, "gateway"},
		{"gateway is the broadcast", NetworkConfig{Mode: "MANAGED", Bridge: "koala0", Gateway: "10.0.0.255"}, "gateway"},
		{"bad dns", NetworkConfig{Mode: "MANAGED", Bridge: "koala0", DNS: []string{"ns1"}}, "dns"},
		{"static without a map", NetworkConfig{Mode: "STATIC", Bridge: "koala0"}, "mac map"},
		{"a map outside STATIC", NetworkConfig{Mode: "MANAGED", Bridge: "koala0", MACMap: []string{"52:54:00:00:00:07=10.0.0.7"}}, "mac_map"},
		{"public interface is the bridge", NetworkConfig{Mode: "MANAGED", Bridge: "koala0", PublicInterface: "koala0"}, "public interface"},
		{"metadata without port", NetworkConfig{Mode: "SYSTEM", Bridge: "koala0", Metadata: "10.0.0.1"}, "metadata"},
		{"metadata ipv6", NetworkConfig{Mode: "SYSTEM", Bridge: "koala0", Metadata: "[::1]:80"}, "metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.Network = tc.n
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), "network") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want a network error about %s", err, tc.want)
			}
		})
	}
	explicit := base
	explicit.Network = NetworkConfig{Mode: "MANAGED", Bridge: "koala0", Gateway: "10.0.0.1"}
	if err := explicit.Validate(); err != nil {
		t.Errorf("gateway .1: %v", err)
	}
}
