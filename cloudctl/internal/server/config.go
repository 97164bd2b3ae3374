package server

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/koala-cloud/koala/pkg/config"
	"github.com/koala-cloud/koala/pkg/sched"
)

// Config is cloudctl's configuration.
type Config struct {
	// Listen is the address of the EC2 API and the internal API.
	Listen string `json:"listen"`
	// MetadataListen is the address of the instance metadata service,
	// which guests reach as 169.254.169.254:80 through the cluster's DNAT
	// (keeping their source address, by which it knows them); empty
	// turns it off.
	MetadataListen string `json:"metadata_listen"`
	// DataDir holds the database and the admin socket.
	DataDir string `json:"data_dir"`
	// Name is the cloud's name, in its certificate.
	Name string `json:"name"`
	// Region is the region this cloud controller serves.
	Region string `json:"region"`
	// Endpoint is the host[:port] DescribeRegions reports; Listen's
	// address when empty.
	Endpoint string `json:"endpoint"`
	// S3URL is walrus's endpoint, written into users' credentials.
	S3URL string `json:"s3_url"`
	// WalrusURL is where cloudctl reaches walrus's internal API (image
	// bundles); S3URL when empty.
	WalrusURL string `json:"walrus_url"`
	// Zones are the region's availability zones, until clusters register
	// theirs.
	Zones []string `json:"zones"`
	// MaxInstances and MaxElasticIPs are the per-account limits reported
	// by DescribeAccountAttributes.
	MaxInstances  int `json:"max_instances"`
	MaxElasticIPs int `json:"max_elastic_ips"`
	// MaxSkew is the clock skew allowed in signed requests.
	MaxSkew config.Duration `json:"max_skew"`
	// RateLimit and RateBurst bound each account's EC2 requests a second
	// (RequestLimitExceeded beyond them); a rate_limit of 0 turns it off.
	RateLimit float64 `json:"rate_limit"`
	RateBurst float64 `json:"rate_burst"`
	// ZonePolicy chooses a cluster for a request that names no zone:
	// most-free (the default) or round-robin.
	ZonePolicy string `json:"zone_policy"`
	// PendingTimeout ends an instance still pending after it in
	// terminated, with the reason.
	PendingTimeout config.Duration `json:"pending_timeout"`
	// ReconcilePoll is how often every cluster's instances are compared
	// with cloudctl's record.
	ReconcilePoll config.Duration `json:"reconcile_poll"`
	// KeepTerminated is how long terminated instances stay visible.
	KeepTerminated config.Duration `json:"keep_terminated"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
}

// Defaults returns the configuration cloudctl runs with when nothing is set.
func Defaults() Config {
	return Config{
		Listen: "127.0.0.1:8773", MetadataListen: "0.0.0.0:8780", DataDir: "var/cloudctl", Name: "koala", Region: "us-east-1",
		S3URL:        "http://127.0.0.1:8776",
		MaxInstances: 20, MaxElasticIPs: 5, MaxSkew: config.Duration{Duration: 15 * time.Minute}, LogLevel: "info",
		RateLimit: 100, RateBurst: 1000,
		ZonePolicy: "most-free", PendingTimeout: config.Duration{Duration: 10 * time.Minute},
		ReconcilePoll: config.Duration{Duration: 5 * time.Second}, KeepTerminated: config.Duration{Duration: time.Hour},
	}
}

// Find reads the configuration named by -config (given), $CLOUDCTL_CONFIG
// or var/cloudctl/config.json when it exists, over the defaults.
func Find(given string) (Config, error) {
	return config.Find(given, "CLOUDCTL_CONFIG", "var/cloudctl/config.json", Defaults)
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
	}
	if c.MetadataListen != "" {
		if _, port, err := net.SplitHostPort(c.MetadataListen); err != nil {
			errs = append(errs, fmt.Errorf("metadata_listen %q: %w", c.MetadataListen, err))
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			errs = append(errs, fmt.Errorf("metadata_listen %q: port is not a number in 0-65535", c.MetadataListen))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is empty"))
	}
	if c.Region == "" {
		errs = append(errs, errors.New("region is empty"))
	}
	if c.MaxSkew.Duration <= 0 {
		errs = append(errs, errors.New("max_skew must be positive"))
	}
	if _, err := sched.ParseZonePolicy(c.ZonePolicy); err != nil {
		errs = append(errs, fmt.Errorf("zone_policy: %w", err))
	}
	if c.PendingTimeout.Duration <= 0 || c.ReconcilePoll.Duration <= 0 || c.KeepTerminated.Duration <= 0 {
		errs = append(errs, errors.New("pending_timeout, reconcile_poll and keep_terminated must be positive"))
	}
	return errors.Join(errs...)
}
