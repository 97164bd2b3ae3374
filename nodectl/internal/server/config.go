package server

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/koala-cloud/koala/pkg/config"
	"github.com/koala-cloud/koala/pkg/sched"
)

// Drivers nodectl runs instances with.
const (
	DriverLibvirt = "libvirt"
	DriverFake    = "fake"
)

// Config is nodectl's configuration.
type Config struct {
	// Name is the node's name: the owner of its domains and the name it
	// reports to its cluster. Required.
	Name string `json:"name"`
	// Listen is the address the internal API listens on.
	Listen string `json:"listen"`
	// DataDir holds the instance directories (data_dir/instances) and,
	// unless CacheDir says otherwise, the image cache (data_dir/cache).
	DataDir string `json:"data_dir"`
	// CacheDir holds the image cache; data_dir/cache when empty.
	CacheDir string `json:"cache_dir,omitempty"`
	// CacheMaxBytes bounds the image cache; images in use are kept even
	// beyond it.
	CacheMaxBytes int64 `json:"cache_max_bytes"`
	// ClusterURL is clusterctl's base URL, where the node pushes its
	// status; empty means no push (the cluster polls).
	ClusterURL string `json:"cluster_url,omitempty"`
	// CloudctlURL is cloudctl's base URL, which resolves the component
	// keys incoming calls are signed with.
	CloudctlURL string `json:"cloudctl_url"`
	// WalrusURL is walrus's base URL, where images come from.
	WalrusURL string `json:"walrus_url"`
	// ComponentCredentials is the JSON file (access_key_id,
	// secret_access_key) nodectl signs its calls with.
	ComponentCredentials string `json:"component_credentials"`
	// Region is the SigV4 scope region of nodectl's calls; "internal"
	// when empty.
	Region string `json:"region,omitempty"`
	// Driver is the hypervisor driver: "libvirt" or "fake" (in-memory,
	// for tests and simulations).
	Driver string `json:"driver"`
	// LibvirtURI is the libvirt connection URI.
	LibvirtURI string `json:"libvirt_uri"`
	// DomainType is auto, kvm or qemu; auto uses kvm when ProbeKernel
	// boots under it.
	DomainType string `json:"domain_type"`
	// ProbeKernel is the kernel the auto domain type probe boots.
	ProbeKernel string `json:"probe_kernel,omitempty"`
	// Bridge is the host bridge instances' NICs join; empty means no NIC.
	Bridge string `json:"bridge"`
	// AoEInterface is the NIC the node reaches ebs's volumes on (AoE);
	// empty: the node cannot attach volumes.
	AoEInterface string `json:"aoe_interface,omitempty"`
	// AoEUserSpace has the node reach volumes with its own AoE initiator
	// (served to qemu over NBD) even where the kernel's aoe driver is
	// loaded; by default the driver's /dev/etherd/eS.L is used there.
	AoEUserSpace bool `json:"aoe_user_space,omitempty"`
	// CreateBridge makes nodectl (libvirt driver only) create Bridge when
	// the host has no such interface.
	CreateBridge bool `json:"create_bridge"`
	// Cmdline is the instances' kernel command line.
	Cmdline string `json:"cmdline"`
	// Capacity is what the node offers; a zero field takes the host's
	// (CPUs; memory less 512 MiB; free disk of data_dir).
	Capacity sched.Resources `json:"capacity"`
	// Heartbeat is how often the status is pushed when nothing changes.
	Heartbeat Duration `json:"heartbeat"`
	// StopGrace is how long a stop waits for the guest to power off.
	StopGrace Duration `json:"stop_grace"`
	// KeepTerminated is how long a terminated instance stays reported.
	KeepTerminated Duration `json:"keep_terminated"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
}

// Duration is a time.Duration written as "15m" in JSON.
type Duration = config.Duration

// Defaults returns the configuration nodectl runs with when nothing is
// set; Name and the URLs have no default.
func Defaults() Config {
	return Config{
		Listen:         "127.0.0.1:8775",
		DataDir:        "var/nodectl",
		CacheMaxBytes:  20 << 30,
		Driver:         DriverLibvirt,
		LibvirtURI:     "qemu:///system",
		DomainType:     "auto",
		Bridge:         "koala0",
		CreateBridge:   true,
		Cmdline:        "console=ttyS0 root=/dev/vda",
		Heartbeat:      Duration{Duration: 5 * time.Second},
		StopGrace:      Duration{Duration: 30 * time.Second},
		KeepTerminated: Duration{Duration: time.Hour},
		LogLevel:       "info",
	}
}

// Find reads the configuration named by -config (given), $NODECTL_CONFIG
// or var/nodectl/config.json when it exists, over the defaults.
func Find(given string) (Config, error) {
	return config.Find(given, "NODECTL_CONFIG", "var/nodectl/config.json", Defaults)
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	} else if strings.ContainsAny(c.Name, "/ \t\n?#%") {
		errs = append(errs, fmt.Errorf("name %q has characters a URL path or domain owner cannot hold", c.Name))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is empty"))
	}
	if c.CacheMaxBytes < 0 {
		errs = append(errs, errors.New("cache_max_bytes is negative"))
	}
	for _, u := range []struct{ name, v string }{
		{"cloudctl_url", c.CloudctlURL}, {"walrus_url", c.WalrusURL}, {"cluster_url", c.ClusterURL},
	} {
		if u.v == "" {
			if u.name != "cluster_url" {
				errs = append(errs, fmt.Errorf("%s is empty", u.name))
			}
			continue
		}
		if p, err := url.Parse(u.v); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s %q is not an http(s) URL", u.name, u.v))
		}
	}
	if c.ComponentCredentials == "" {
		errs = append(errs, errors.New("component_credentials is empty"))
	}
	switch c.Driver {
	case DriverLibvirt:
		if c.LibvirtURI == "" {
			errs = append(errs, errors.New("libvirt_uri is empty"))
		}
	case DriverFake:
	default:
		errs = append(errs, fmt.Errorf("driver %q is neither %s nor %s", c.Driver, DriverLibvirt, DriverFake))
	}
	switch c.DomainType {
	case "auto", "kvm", "qemu":
	default:
		errs = append(errs, fmt.Errorf("domain_type %q is not auto, kvm or qemu", c.DomainType))
	}
	if c.Bridge != "" && (len(c.Bridge) > 15 || strings.ContainsAny(c.Bridge, "/ \t\n:")) {
		errs = append(errs, fmt.Errorf("bridge %q is not an interface name", c.Bridge))
	}
	if c.Capacity.Cores < 0 || c.Capacity.MemoryMiB < 0 || c.Capacity.DiskGiB < 0 {
		errs = append(errs, fmt.Errorf("capacity %+v has a negative field", c.Capacity))
	}
	if c.Heartbeat.Duration <= 0 {
		errs = append(errs, errors.New("heartbeat must be positive"))
	}
	if c.StopGrace.Duration < 0 {
		errs = append(errs, errors.New("stop_grace is negative"))
	}
	if c.KeepTerminated.Duration <= 0 {
		errs = append(errs, errors.New("keep_terminated must be positive"))
	}
	return errors.Join(errs...)
}
