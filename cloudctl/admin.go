package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/koala-cloud/koala/cloudctl/internal/accounts"
	"github.com/koala-cloud/koala/cloudctl/internal/admin"
	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/cloudctl/internal/images"
	"github.com/koala-cloud/koala/cloudctl/internal/server"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
)

// backend is what the admin verbs need: the admin service of a running
// cloudctl (over its socket), or the service over its database.
type backend interface {
	CreateAccount(ctx context.Context, name, email string) (admin.Credential, error)
	Accounts(ctx context.Context) ([]accounts.Account, error)
	DeleteAccount(ctx context.Context, name string) error
	CreateKey(ctx context.Context, account string) (admin.Credential, error)
	Keys(ctx context.Context, account string) ([]admin.Key, error)
	DeleteKey(ctx context.Context, id string) error
	Credentials(ctx context.Context, account string) (admin.Bundle, error)
	AddSigningCert(ctx context.Context, account, certPEM string) (accounts.Cert, error)
	SetImageDefaults(ctx context.Context, d images.Defaults) error
	VMTypes(ctx context.Context) ([]api.VMType, error)
	SetVMType(ctx context.Context, t api.VMType) error
	DeleteVMType(ctx context.Context, name string) error
	Clusters(ctx context.Context) ([]clusters.Cluster, error)
	RegisterCluster(ctx context.Context, zone, url string) error
	DeregisterCluster(ctx context.Context, zone string) error
	SetClusterAddresses(ctx context.Context, zone string, pool []string, auto bool) error
	SetClusterEBS(ctx context.Context, zone, url string) error
	ComponentKey(ctx context.Context, name string) (admin.ComponentKey, error)
}

// openBackend reaches the running daemon, or opens its database when no
// daemon answers on the socket. close releases what it opened.
func openBackend(ctx context.Context, cfg server.Config) (b backend, close func(), err error) {
	if c, err := admin.Dial(ctx, server.SocketPath(cfg.DataDir)); err == nil {
		return c, func() {}, nil
	}
	db, err := server.OpenDB(cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	if _, err := admin.LoadSettings(db); err != nil {
		db.Close()
		return nil, nil, err
	}
	return admin.NewService(db), func() { db.Close() }, nil
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// adminCommand runs `cloudctl admin ...`.
func adminCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("admin", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cfgPath := fl.String("config", "", "configuration file (JSON)")
	email := fl.String("email", "", "the account's email address (account create)")
	walrusKey := fl.String("walrus-key", "", "write walrus's component key to this file (init)")
	dir := fl.String("dir", "", "directory to write credentials into (credentials)")
	cloudCert := fl.String("cloud-cert", "", "adopt this cloud certificate, PEM (init)")
	cloudKey := fl.String("cloud-key", "", "adopt this cloud private key, PEM (init)")
	kernel := fl.String("kernel", "", "default kernel image (image-defaults)")
	ramdisk := fl.String("ramdisk", "", "default ramdisk image (image-defaults)")
	cores := fl.Int("cores", 0, "cores (vmtype set)")
	memory := fl.Int("memory", 0, "memory in MiB (vmtype set)")
	disk := fl.Int("disk", 0, "disk in GiB (vmtype set)")
	autoIP := fl.Bool("auto-public-ip", false, "give instances a public address at launch (cluster addresses)")
	outFile := fl.String("o", "", "write the key to this file, mode 0600 (component-key)")
	// Verbs and names come first, flags after them.
	var words []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		words, args = append(words, args[0]), args[1:]
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "cloudctl:", err)
		return 1
	}
	cfg, err := server.Find(*cfgPath)
	if err != nil {
		return fail(err)
	}
	if len(words) == 1 && words[0] == "init" {
		opts := admin.InitOptions{Name: cfg.Name}
		if *cloudCert != "" || *cloudKey != "" {
			if opts.CertPEM, err = os.ReadFile(*cloudCert); err != nil {
				return fail(err)
			}
			if opts.KeyPEM, err = os.ReadFile(*cloudKey); err != nil {
				return fail(err)
			}
		}
		return initCloud(ctx, cfg, opts, *walrusKey, stdout, stderr)
	}
	b, closeBackend, err := openBackend(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer closeBackend()
	switch {
	case len(words) == 3 && words[0] == "account" && words[1] == "create":
		c, err := b.CreateAccount(ctx, words[2], *email)
		if err != nil {
			return fail(err)
		}
		printJSON(stdout, c)
	case len(words) == 2 && words[0] == "account" && words[1] == "list":
		as, err := b.Accounts(ctx)
		if err != nil {
			return fail(err)
		}
		printJSON(stdout, as)
	case len(words) == 3 && words[0] == "account" && words[1] == "delete":
		if err := b.DeleteAccount(ctx, words[2]); err != nil {
			return fail(err)
		}
	case len(words) == 3 && words[0] == "access-key" && words[1] == "create":
		c, err := b.CreateKey(ctx, words[2])
		if err != nil {
			return fail(err)
		}
		printJSON(stdout, c)
	case len(words) == 3 && words[0] == "access-key" && words[1] == "list":
		ks, err := b.Keys(ctx, words[2])
		if err != nil {
			return fail(err)
		}
		printJSON(stdout, ks)
	case len(words) == 3 && words[0] == "access-key" && words[1] == "delete":
		if err := b.DeleteKey(ctx, words[2]); err != nil {
			return fail(err)
		}
	case len(words) == 4 && words[0] == "signing-cert" && words[1] == "upload":
		data, err := os.ReadFile(words[3])
		if err != nil {
			return fail(err)
		}
		c, err := b.AddSigningCert(ctx, words[2], string(data))
		if err != nil {
			return fail(err)
		}
		printJSON(stdout, map[string]string{"certificate_id": c.ID})
	case len(words) == 1 && words[0] == "image-defaults":
		if err := b.SetImageDefaults(ctx, images.Defaults{Kernel: *kernel, Ramdisk: *ramdisk}); err != nil {
			return fail(err)
		}
	case len(words) == 2 && words[0] == "vmtype" && words[1] == "list":
		ts, err := b.VMTypes(ctx)
		if err != nil {
			return fail(err)
		}
		printJSON(stdout, ts)
	case len(words) == 3 && words[0] == "vmtype" && words[1] == "set":
		t := api.VMType{Name: words[2], Resources: sched.Resources{Cores: *cores, MemoryMiB: *memory, DiskGiB: *disk}}
		if err := b.SetVMType(ctx, t); err != nil {
			return fail(err)
		}
	case len(words) == 3 && words[0] == "vmtype" && words[1] == "delete":
		if err := b.DeleteVMType(ctx, words[2]); err != nil {
			return fail(err)
		}
	case len(words) == 4 && words[0] == "cluster" && words[1] == "register":
		if err := b.RegisterCluster(ctx, words[2], words[3]); err != nil {
			return fail(err)
		}
	case len(words) == 2 && words[0] == "cluster" && words[1] == "list":
		cs, err := b.Clusters(ctx)
		if err != nil {
			return fail(err)
		}
		printJSON(stdout, cs)
	case len(words) == 3 && words[0] == "cluster" && words[1] == "deregister":
		if err := b.DeregisterCluster(ctx, words[2]); err != nil {
			return fail(err)
		}
	case len(words) >= 3 && words[0] == "cluster" && words[1] == "addresses":
		if err := b.SetClusterAddresses(ctx, words[2], words[3:], *autoIP); err != nil {
			return fail(err)
		}
	case len(words) == 4 && words[0] == "cluster" && words[1] == "ebs":
		if err := b.SetClusterEBS(ctx, words[2], words[3]); err != nil {
			return fail(err)
		}
	case len(words) == 2 && words[0] == "component-key":
		k, err := b.ComponentKey(ctx, words[1])
		if err != nil {
			return fail(err)
		}
		if *outFile == "" {
			printJSON(stdout, k)
			break
		}
		data, _ := json.MarshalIndent(k, "", "  ")
		if err := os.WriteFile(*outFile, append(data, '\n'), 0o600); err != nil {
			return fail(err)
		}
	case len(words) == 2 && words[0] == "credentials":
		bundle, err := b.Credentials(ctx, words[1])
		if err != nil {
			return fail(err)
		}
		out := *dir
		if out == "" {
			out = words[1] + "-credentials"
		}
		if err := writeCredentials(out, cfg, bundle); err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, "wrote", out)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	return 0
}

// initCloud creates the cloud's state and prints the admin credentials.
func initCloud(ctx context.Context, cfg server.Config, opts admin.InitOptions, walrusKey string, stdout, stderr io.Writer) int {
	db, err := server.OpenDB(cfg.DataDir)
	if err != nil {
		fmt.Fprintln(stderr, "cloudctl:", err)
		return 1
	}
	defer db.Close()
	res, err := admin.NewService(db).Init(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "cloudctl:", err)
		return 1
	}
	if walrusKey != "" {
		data, _ := json.MarshalIndent(res.Walrus, "", "  ")
		if err := os.WriteFile(walrusKey, append(data, '\n'), 0o600); err != nil {
			fmt.Fprintln(stderr, "cloudctl:", err)
			return 1
		}
	}
	printJSON(stdout, res.Admin)
	return 0
}

// writeCredentials writes an account's credentials for the usual tools:
// an aws-cli profile, an eucarc, and the certificates for bundling.
func writeCredentials(dir string, cfg server.Config, b admin.Bundle) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	ec2URL := "http://" + cfg.Listen + "/"
	if cfg.Endpoint != "" {
		ec2URL = "http://" + cfg.Endpoint + "/"
	}
	profile := b.DisplayName
	files := map[string]string{
		"credentials": fmt.Sprintf("[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
			profile, b.AccessKeyID, b.SecretAccessKey),
		"config": fmt.Sprintf("[profile %s]\nregion = %s\n", profile, cfg.Region),
		"eucarc": strings.Join([]string{
			"export EC2_URL=" + ec2URL,
			"export S3_URL=" + cfg.S3URL,
			"export AWS_ENDPOINT_URL_EC2=" + ec2URL,
			"export AWS_ENDPOINT_URL_S3=" + cfg.S3URL,
			"export AWS_DEFAULT_REGION=" + cfg.Region,
			"export AWS_ACCESS_KEY_ID=" + b.AccessKeyID,
			"export AWS_SECRET_ACCESS_KEY=" + b.SecretAccessKey,
			"export EC2_ACCESS_KEY=" + b.AccessKeyID,
			"export EC2_SECRET_KEY=" + b.SecretAccessKey,
			"export EC2_ACCOUNT_NUMBER=" + b.AccountID,
			"export EC2_USER_ID=" + b.AccountID,
			"export EC2_CERT=" + filepath.Join(abs, "cert.pem"),
			"export EC2_PRIVATE_KEY=" + filepath.Join(abs, "pk.pem"),
			"export EUCALYPTUS_CERT=" + filepath.Join(abs, "cloud-cert.pem"),
			"",
		}, "\n"),
		"cert.pem":       string(b.UserCertPEM),
		"pk.pem":         string(b.UserKeyPEM),
		"cloud-cert.pem": string(b.CloudCertPEM),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}
