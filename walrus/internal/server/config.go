package server

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/koala-cloud/koala/pkg/config"
)

// Config is walrus's configuration.
type Config struct {
	// Listen is the address the S3 endpoint listens on.
	Listen string `json:"listen"`
	// DataDir holds the metadata database and the object files.
	DataDir string `json:"data_dir"`
	// AccountsFile lists the accounts and keys walrus accepts when it runs
	// standalone.
	AccountsFile string `json:"accounts_file"`
	// CloudctlURL, when set, makes walrus resolve access keys and accounts
	// through cloudctl's internal API instead of AccountsFile.
	CloudctlURL string `json:"cloudctl_url,omitempty"`
	// ComponentCredentials is the JSON file (access_key_id,
	// secret_access_key) walrus signs its calls to cloudctl with.
	ComponentCredentials string `json:"component_credentials,omitempty"`
	// KeyCacheTTL is how long a key looked up in cloudctl is trusted: the
	// longest a revoked key keeps working.
	KeyCacheTTL Duration `json:"key_cache_ttl"`
	// ImageCacheDir holds decrypted images for nodes (data_dir/imagecache
	// when empty), and ImageCacheSize bounds it in bytes.
	ImageCacheDir  string `json:"image_cache_dir"`
	ImageCacheSize int64  `json:"image_cache_size"`
	// Region is the region the endpoint serves and reports for buckets.
	Region string `json:"region"`
	// Domains enable virtual-host addressing: bucket.<domain>.
	Domains []string `json:"domains"`
	// MaxBucketsPerAccount is S3's per-account bucket limit.
	MaxBucketsPerAccount int `json:"max_buckets_per_account"`
	// MaxObjectSize bounds a single PUT or part, in bytes.
	MaxObjectSize int64 `json:"max_object_size"`
	// MinPartSize is the smallest size of every part but the last.
	MinPartSize int64 `json:"min_part_size"`
	// MaxSkew is the clock skew allowed in signed requests.
	MaxSkew Duration `json:"max_skew"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
}

// Duration is a time.Duration written as "15m" in JSON.
type Duration = config.Duration

// Defaults returns the configuration walrus runs with when nothing is set.
func Defaults() Config {
	return Config{
		Listen:               "127.0.0.1:8776",
		DataDir:              "var/walrus",
		AccountsFile:         "var/walrus/accounts.json",
		Region:               "us-east-1",
		Domains:              []string{"s3.localhost", "localhost"},
		MaxBucketsPerAccount: 100,
		MaxObjectSize:        5 << 30,
		MinPartSize:          5 << 20,
		MaxSkew:              Duration{Duration: 15 * time.Minute},
		KeyCacheTTL:          Duration{Duration: 5 * time.Second},
		ImageCacheSize:       10 << 30,
		LogLevel:             "info",
	}
}

// Find reads the configuration named by -config (given), $WALRUS_CONFIG
// or var/walrus/config.json when it exists, over the defaults.
func Find(given string) (Config, error) {
	return config.Find(given, "WALRUS_CONFIG", "var/walrus/config.json", Defaults)
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is empty"))
	}
	if c.CloudctlURL == "" && c.AccountsFile == "" {
		errs = append(errs, errors.New("accounts_file is empty and no cloudctl_url is set"))
	}
	if c.CloudctlURL != "" && c.ComponentCredentials == "" {
		errs = append(errs, errors.New("cloudctl_url needs component_credentials"))
	}
	if c.Region == "" {
		errs = append(errs, errors.New("region is empty"))
	}
	for _, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, "/: ") {
			errs = append(errs, fmt.Errorf("domain %q is not a host name", d))
		}
	}
	if c.MaxBucketsPerAccount < 1 {
		errs = append(errs, errors.New("max_buckets_per_account must be at least 1"))
	}
	if c.MinPartSize < 1 || c.MaxObjectSize < c.MinPartSize {
		errs = append(errs, errors.New("need 0 < min_part_size <= max_object_size"))
	}
	if c.MaxSkew.Duration <= 0 {
		errs = append(errs, errors.New("max_skew must be positive"))
	}
	return errors.Join(errs...)
}
