package server

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/koala-cloud/koala/pkg/config"
)

// Config is ebs's configuration.
type Config struct {
	// Listen is the address of the internal (control) API.
	Listen string `json:"listen"`
	// DataDir holds the database and the volume files.
	DataDir string `json:"data_dir"`
	// Interface is the network interface AoE is served on.
	Interface string `json:"interface"`
	// Shelf is the first AoE shelf the volumes use; Shelves how many
	// (255 volumes each).
	Shelf   uint16 `json:"shelf"`
	Shelves int    `json:"shelves"`
	// LVMVolumeGroup and LVMThinPool, when set, keep volumes as thin
	// logical volumes of that pool (which must zero new blocks) instead
	// of sparse files under data_dir.
	LVMVolumeGroup string `json:"lvm_volume_group,omitempty"`
	LVMThinPool    string `json:"lvm_thin_pool,omitempty"`
	// Workers is how many AoE requests are handled at once.
	Workers int `json:"workers"`
	// CloudctlURL resolves the component keys that sign incoming calls.
	CloudctlURL string `json:"cloudctl_url"`
	// WalrusURL is walrus's base URL, where snapshots are kept (without
	// it, ebs makes no snapshots and no volumes from them).
	WalrusURL string `json:"walrus_url,omitempty"`
	// ComponentCredentials is ebs's own key file, for its calls.
	ComponentCredentials string `json:"component_credentials"`
	// Region is the SigV4 scope of outgoing calls ("internal" when empty).
	Region string `json:"region,omitempty"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
}

// Defaults returns the configuration ebs runs with when nothing is set.
// Interface, CloudctlURL and ComponentCredentials have no default.
func Defaults() Config {
	return Config{Listen: "127.0.0.1:8777", DataDir: "var/ebs", Shelf: 1, Shelves: 1, Workers: 8, LogLevel: "info"}
}

// Find reads the configuration named by -config (given), $EBS_CONFIG
// or var/ebs/config.json when it exists, over the defaults.
func Find(given string) (Config, error) {
	return config.Find(given, "EBS_CONFIG", "var/ebs/config.json", Defaults)
}

// Validate reports what is wrong with c for serving.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is empty"))
	}
	if c.Interface == "" {
		errs = append(errs, errors.New("interface is empty: name the NIC AoE is served on"))
	}
	if c.Shelf == 0xffff || c.Shelves < 1 || int(c.Shelf)+c.Shelves > 0xffff {
		errs = append(errs, fmt.Errorf("shelf %d and shelves %d: want shelves >= 1 below 65535", c.Shelf, c.Shelves))
	}
	if (c.LVMVolumeGroup == "") != (c.LVMThinPool == "") {
		errs = append(errs, errors.New("lvm_volume_group and lvm_thin_pool go together"))
	}
	if c.Workers < 1 {
		errs = append(errs, errors.New("workers must be positive"))
	}
	if u, err := url.Parse(c.CloudctlURL); c.CloudctlURL == "" || err != nil || u.Host == "" {
		errs = append(errs, fmt.Errorf("cloudctl_url %q is not a URL", c.CloudctlURL))
	}
	if u, err := url.Parse(c.WalrusURL); c.WalrusURL != "" && (err != nil || u.Host == "") {
		errs = append(errs, fmt.Errorf("walrus_url %q is not a URL", c.WalrusURL))
	}
	if c.ComponentCredentials == "" {
		errs = append(errs, errors.New("component_credentials is empty"))
	}
	return errors.Join(errs...)
}
