package server

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

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
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
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
		LogLevel:       "info",
	}
}

// Load reads a JSON configuration file over the defaults.
func Load(path string) (Config, error) {
	cfg := Defaults()
	err := config.Load(path, &cfg)
	return cfg, err
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
	if _, err := placement.NewPool(c.Subnet); err != nil {
		errs = append(errs, err)
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
