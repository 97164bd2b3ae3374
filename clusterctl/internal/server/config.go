package server

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"time"

	"github.com/koala-cloud/koala/clusterctl/internal/network"
	"github.com/koala-cloud/koala/clusterctl/internal/placement"
	"github.com/koala-cloud/koala/pkg/config"
	"github.com/koala-cloud/koala/pkg/sched"
)

// Config is clusterctl's configuration.
type Config struct {
	// Zone is the availability zone the cluster serves, e.g. us-east-1a.
	Zone string `json:"zone"`
	// Listen is the address of the internal API.
	Listen string `json:"listen"`
	// DataDir holds the database and the admin socket.
	DataDir string `json:"data_dir"`
	// CloudctlURL is cloudctl's internal API: it resolves the component
	// keys that sign incoming calls and receives instance events.
	CloudctlURL string `json:"cloudctl_url"`
	// ComponentCredentials is the JSON key file (access_key_id,
	// secret_access_key) clusterctl signs its calls to nodes and cloudctl
	// with.
	ComponentCredentials string `json:"component_credentials"`
	// Region is the SigV4 scope of outgoing calls ("internal" when empty).
	Region string `json:"region,omitempty"`
	// Policy chooses a node per instance: GREEDY, ROUNDROBIN, PACK or
	// SPREAD.
	Policy string `json:"policy"`
	// Subnet is where private addresses are leased from.
	Subnet string `json:"subnet"`
	// Heartbeat is the nodes' reporting period: a node is DOWN when
	// neither a push nor a poll of it succeeded for three of them.
	Heartbeat Duration `json:"heartbeat"`
	// Poll is the reconcile loop's period.
	Poll Duration `json:"poll"`
	// LaunchTimeout is how long a node may stay unreachable for a launch
	// or a termination before the instance ends terminated.
	LaunchTimeout Duration `json:"launch_timeout"`
	// KeepTerminated is how long terminated instances stay listed.
	KeepTerminated Duration `json:"keep_terminated"`
	// Network is the cluster's network mode and what it serves.
	Network NetworkConfig `json:"network"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
}

// NetworkConfig is the cluster network of the host clusterctl runs on.
type NetworkConfig struct {
	// Mode is SYSTEM (the host's bridge and DHCP: nothing is changed but
	// the metadata redirect), STATIC, MANAGED-NOVLAN or MANAGED (the
	// bridge, its gateway address and DHCP are clusterctl's).
	Mode string `json:"mode"`
	// Bridge is the cluster bridge.
	Bridge string `json:"bridge"`
	// Gateway is the bridge's address and the guests' router; empty means
	// the subnet's first host address, the one the lease pool skips.
	Gateway string `json:"gateway,omitempty"`
	// DNS are the name servers DHCP hands out; none when empty.
	DNS []string `json:"dns,omitempty"`
	// Metadata is the host:port of cloudctl's metadata listener, where
	// guests' requests to 169.254.169.254:80 are sent; empty sends them
	// nowhere.
	Metadata string `json:"metadata,omitempty"`
	// PublicInterface, when set, is the host interface the cluster's
	// public addresses arrive on: clusterctl holds each address
	// associated with an instance on it (as a /32, so the host answers
	// ARP for it) and drops the pool's others. Empty leaves routing the
	// pool to this host to the administrator.
	PublicInterface string `json:"public_interface,omitempty"`
	// MACMap is STATIC mode's fixed leases, "MAC=IP" each (Eucalyptus's
	// VNET_MACMAP): instances get only these addresses, with these MACs,
	// by DHCP.
	MACMap []string `json:"mac_map,omitempty"`
}

// Duration is a time.Duration written as "15m" in JSON.
type Duration = config.Duration

// Defaults returns the configuration clusterctl runs with when nothing
// is set. Zone, CloudctlURL and ComponentCredentials have no default.
func Defaults() Config {
	return Config{
		Listen:         "127.0.0.1:8774",
		DataDir:        "var/clusterctl",
		Policy:         string(sched.RoundRobin),
		Subnet:         "10.0.0.0/24",
		Heartbeat:      Duration{Duration: 5 * time.Second},
		Poll:           Duration{Duration: 5 * time.Second},
		LaunchTimeout:  Duration{Duration: 2 * time.Minute},
		KeepTerminated: Duration{Duration: time.Hour},
		Network:        NetworkConfig{Mode: string(network.System), Bridge: "koala0"},
		LogLevel:       "info",
	}
}

// Find reads the configuration named by -config (given), $CLUSTERCTL_CONFIG
// or var/clusterctl/config.json when it exists, over the defaults.
func Find(given string) (Config, error) {
	return config.Find(given, "CLUSTERCTL_CONFIG", "var/clusterctl/config.json", Defaults)
}

// Validate reports what is wrong with c for serving.
func (c Config) Validate() error {
	var errs []error
	if c.Zone == "" {
		errs = append(errs, errors.New("zone is empty"))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is empty"))
	}
	if u, err := url.Parse(c.CloudctlURL); c.CloudctlURL == "" || err != nil || u.Host == "" {
		errs = append(errs, fmt.Errorf("cloudctl_url %q is not a URL", c.CloudctlURL))
	}
	if c.ComponentCredentials == "" {
		errs = append(errs, errors.New("component_credentials is empty"))
	}
	if _, err := sched.ParsePolicy(c.Policy); err != nil {
		errs = append(errs, fmt.Errorf("policy: %w", err))
	}
	if _, err := c.pool(); err != nil {
		errs = append(errs, fmt.Errorf("network: %w", err))
	} else if _, err := c.network(); err != nil {
		errs = append(errs, fmt.Errorf("network: %w", err))
	}
	for _, d := range []struct {
		name string
		d    Duration
	}{{"heartbeat", c.Heartbeat}, {"poll", c.Poll}, {"launch_timeout", c.LaunchTimeout}, {"keep_terminated", c.KeepTerminated}} {
		if d.d.Duration <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", d.name))
		}
	}
	return errors.Join(errs...)
}

// network is the network package's configuration for c, checked.
// pool is the cluster's private address pool: the subnet, or in STATIC
// mode the addresses of the MAC map.
func (c Config) pool() (*placement.Pool, error) {
	if c.Network.Mode == string(network.Static) {
		return placement.NewStaticPool(c.Subnet, c.Network.MACMap)
	}
	if len(c.Network.MACMap) > 0 {
		return nil, fmt.Errorf("mac_map is for STATIC mode, not %s", c.Network.Mode)
	}
	return placement.NewPool(c.Subnet)
}

func (c Config) network() (network.Config, error) {
	n := c.Network
	mode, err := network.ParseMode(n.Mode)
	if err != nil {
		return network.Config{}, err
	}
	pool, err := c.pool()
	if err != nil {
		return network.Config{}, err
	}
	subnet := netip.MustParsePrefix(c.Subnet).Masked() // NewPool parsed it
	out := network.Config{Mode: mode, Bridge: n.Bridge, Subnet: subnet, Gateway: subnet.Addr().Next(),
		PublicInterface: n.PublicInterface}
	if n.Gateway != "" {
		gw, err := netip.ParseAddr(n.Gateway)
		switch {
		case err != nil || !gw.Is4():
			return network.Config{}, fmt.Errorf("gateway %q: want an IPv4 address", n.Gateway)
		case !subnet.Contains(gw) || gw == subnet.Addr() || pool.Contains(gw.String()) || gw.Next() == netip.Addr{} ||
			!subnet.Contains(gw.Next()):
			return network.Config{}, fmt.Errorf("gateway %s: want a host address of %s outside the lease pool (%s)",
				gw, subnet, subnet.Addr().Next())
		}
		out.Gateway = gw
	}
	for _, d := range n.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil || !a.Is4() {
			return network.Config{}, fmt.Errorf("dns %q: want an IPv4 address", d)
		}
		out.DNS = append(out.DNS, a)
	}
	if n.Metadata != "" {
		ap, err := netip.ParseAddrPort(n.Metadata)
		if err != nil {
			return network.Config{}, fmt.Errorf("metadata %q: want IPv4 host:port: %w", n.Metadata, err)
		}
		out.Metadata = ap
	}
	if mode != network.System {
		// dnsmasq runs as root: data_dir is private (0700), and so may be
		// its parents, which a dropped-privilege dnsmasq could not reach.
		if out.DHCPDir, err = network.DefaultDHCPDir(c.DataDir); err != nil {
			return network.Config{}, err
		}
		out.DHCPUser = "root"
	}
	return out, out.Validate()
}
