package tools

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/koala-cloud/koala/pkg/bundle"
)

// Usage is the synopsis of the verbs.
const Usage = `  cloudctl bundle-image -i IMAGE [-d DIR] [-r ARCH] [-kernel aki-...] [-ramdisk ari-...]
                        [-type machine|kernel|ramdisk] [-p NAME] [-part-size SIZE] [-B MAPPINGS]
  cloudctl upload-bundle -b BUCKET[/PREFIX] -m MANIFEST
  cloudctl register BUCKET/[PREFIX/]NAME.manifest.xml -n NAME [-d DESC] [-a ARCH] [-kernel ..] [-ramdisk ..]
  cloudctl download-bundle -b BUCKET[/PREFIX] -m NAME.manifest.xml [-d DIR]
  cloudctl unbundle -m MANIFEST [-d DIR] [-privatekey KEY] [-cert CERT]
  cloudctl delete-bundle -b BUCKET[/PREFIX] -m NAME.manifest.xml [-clear]
  cloudctl install-image -i IMAGE -b BUCKET[/PREFIX] -n NAME [-description DESC] [-r ARCH]
                        [-kernel ..] [-ramdisk ..] [-type ..] [-p NAME] [-part-size SIZE] [-timeout 30m] [-no-wait]

The image verbs take their settings from flags or from the environment an
eucarc sets: -ec2-url (EC2_URL), -s3-url (S3_URL), -region (AWS_DEFAULT_REGION),
-access-key and -secret-key (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY),
-user (EC2_ACCOUNT_NUMBER), -cert (EC2_CERT), -privatekey (EC2_PRIVATE_KEY) and
-cloud-cert (EUCALYPTUS_CERT; else the cloud's DescribeCloudCertificate).
-s3-style virtual addresses buckets as BUCKET.HOST instead of HOST/BUCKET.
`

// verbs maps each verb to its command.
var verbs = map[string]func(*cli, []string) error{
	"bundle-image":    (*cli).bundleImage,
	"upload-bundle":   (*cli).uploadBundle,
	"register":        (*cli).register,
	"download-bundle": (*cli).downloadBundle,
	"unbundle":        (*cli).unbundle,
	"delete-bundle":   (*cli).deleteBundle,
	"install-image":   (*cli).installImage,
}

// IsVerb reports whether name is one of the image verbs.
func IsVerb(name string) bool {
	_, ok := verbs[name]
	return ok
}

// Run runs `cloudctl VERB ARGS...` for an image verb: args[0] is the
// verb. getenv looks up the environment (os.Getenv). It returns the exit
// status: 0 on success, 1 when the work failed, 2 for bad arguments.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || !IsVerb(args[0]) {
		fmt.Fprint(stderr, "usage:\n"+Usage)
		return 2
	}
	c := &cli{ctx: ctx, verb: args[0], getenv: getenv, stdout: stdout, stderr: stderr}
	err := verbs[args[0]](c, args[1:])
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "cloudctl %s: %v\n", c.verb, err)
		if c.fl != nil {
			fmt.Fprintf(stderr, "run `cloudctl %s -h` for its flags\n", c.verb)
		}
		return 2
	}
	fmt.Fprintf(stderr, "cloudctl %s: %v\n", c.verb, err)
	return 1
}

// usageError is a mistake in the arguments.
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// cli is one run of a verb.
type cli struct {
	ctx            context.Context
	verb           string
	getenv         func(string) string
	stdout, stderr io.Writer
	fl             *flag.FlagSet

	// Connection flags.
	ec2URL, s3URL, region, accessKey, secretKey, s3Style string
	// Key flags.
	user, cert, privateKey, cloudCert string
}

// flags starts the verb's flag set.
func (c *cli) flags(synopsis string) *flag.FlagSet {
	fl := flag.NewFlagSet(c.verb, flag.ContinueOnError)
	fl.SetOutput(c.stderr)
	fl.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: cloudctl %s %s\n", c.verb, synopsis)
		fl.PrintDefaults()
	}
	c.fl = fl
	return fl
}

// connFlags adds the flags that say how to reach the cloud.
func (c *cli) connFlags(fl *flag.FlagSet) {
	fl.StringVar(&c.ec2URL, "ec2-url", "", "EC2 endpoint (default $EC2_URL)")
	fl.StringVar(&c.s3URL, "s3-url", "", "S3 endpoint (default $S3_URL)")
	fl.StringVar(&c.region, "region", "", "region (default $AWS_DEFAULT_REGION, else us-east-1)")
	fl.StringVar(&c.accessKey, "access-key", "", "access key ID (default $AWS_ACCESS_KEY_ID)")
	fl.StringVar(&c.secretKey, "secret-key", "", "secret access key (default $AWS_SECRET_ACCESS_KEY)")
	fl.StringVar(&c.s3Style, "s3-style", "path", "S3 addressing: path (HOST/BUCKET) or virtual (BUCKET.HOST)")
}

// keyFlags adds the flags naming the certificates and keys of bundling.
func (c *cli) keyFlags(fl *flag.FlagSet) {
	fl.StringVar(&c.user, "user", "", "the owner's 12-digit account ID (default $EC2_ACCOUNT_NUMBER)")
	fl.StringVar(&c.cert, "cert", "", "user certificate, PEM (default $EC2_CERT)")
	fl.StringVar(&c.privateKey, "privatekey", "", "user private key, PEM (default $EC2_PRIVATE_KEY)")
	fl.StringVar(&c.cloudCert, "cloud-cert", "", "cloud certificate, PEM (default $EUCALYPTUS_CERT, else asked of the cloud)")
}

// parse parses args, flags and positional arguments mixed, and returns
// the positional ones.
func (c *cli) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.fl.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = c.fl.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// env returns the first non-empty of the flag value and the variables.
func (c *cli) env(flagValue string, names ...string) string {
	if flagValue != "" {
		return flagValue
	}
	for _, n := range names {
		if v := c.getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// config is the connection configuration from the flags and environment.
func (c *cli) config() (Config, error) {
	cfg := Config{
		EC2URL: c.env(c.ec2URL, "EC2_URL", "AWS_ENDPOINT_URL_EC2"),
		S3URL:  c.env(c.s3URL, "S3_URL", "AWS_ENDPOINT_URL_S3"),
		Region: c.env(c.region, "AWS_DEFAULT_REGION", "AWS_REGION"),
		Log:    c.stderr,
	}
	if c.accessKey != "" || c.secretKey != "" {
		cfg.AccessKeyID, cfg.SecretAccessKey = c.accessKey, c.secretKey
	} else {
		cfg.AccessKeyID = c.env("", "AWS_ACCESS_KEY_ID", "EC2_ACCESS_KEY")
		cfg.SecretAccessKey = c.env("", "AWS_SECRET_ACCESS_KEY", "EC2_SECRET_KEY")
		cfg.SessionToken = c.getenv("AWS_SESSION_TOKEN")
	}
	switch c.s3Style {
	case "path", "":
	case "virtual":
		cfg.VirtualHost = true
	default:
		return cfg, usagef("-s3-style %q: want path or virtual", c.s3Style)
	}
	return cfg, nil
}

func (c *cli) client() (*Client, error) {
	cfg, err := c.config()
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

// keys loads the user's certificate and key and the cloud's certificate,
// asking the cloud for its certificate when no file names it.
func (c *cli) keys() (Keys, error) {
	var k Keys
	k.User = c.env(c.user, "EC2_ACCOUNT_NUMBER", "EC2_USER_ID")
	certPath := c.env(c.cert, "EC2_CERT")
	keyPath := c.env(c.privateKey, "EC2_PRIVATE_KEY")
	if certPath == "" || keyPath == "" {
		return k, usagef("no user certificate and private key: pass -cert and -privatekey or set EC2_CERT and EC2_PRIVATE_KEY (source an eucarc)")
	}
	if k.User == "" {
		return k, usagef("no account ID: pass -user or set EC2_ACCOUNT_NUMBER")
	}
	var err error
	if k.UserCert, err = LoadCert(certPath); err != nil {
		return k, err
	}
	if k.UserKey, err = LoadKey(keyPath); err != nil {
		return k, err
	}
	if err := checkPair(k.UserCert, k.UserKey); err != nil {
		return k, fmt.Errorf("%s and %s: %w", certPath, keyPath, err)
	}
	if p := c.env(c.cloudCert, "EUCALYPTUS_CERT"); p != "" {
		k.CloudCert, err = LoadCert(p)
		return k, err
	}
	cl, err := c.client()
	if err != nil {
		return k, fmt.Errorf("no cloud certificate file (-cloud-cert, EUCALYPTUS_CERT) and cannot ask the cloud: %w", err)
	}
	if k.CloudCert, err = cl.CloudCertificate(c.ctx); err != nil {
		return k, fmt.Errorf("no cloud certificate file (-cloud-cert, EUCALYPTUS_CERT) and the cloud did not give one: %w", err)
	}
	fmt.Fprintf(c.stderr, "Using the cloud certificate of %s (%s)\n", cl.cfg.EC2URL, k.CloudCert.Subject)
	return k, nil
}

// imageFlags adds the flags describing the image and its bundle.
type imageFlags struct {
	img                   Image
	kernel, ramdisk, typ  string
	partSize, mappings    string
	arch                  string
	kernelSet, ramdiskSet bool
}

func (f *imageFlags) add(fl *flag.FlagSet) {
	fl.StringVar(&f.img.Path, "i", "", "the image file")
	fl.StringVar(&f.img.Path, "image", "", "same as -i")
	fl.StringVar(&f.arch, "r", "x86_64", "architecture: i386, x86_64, arm64, ...")
	fl.StringVar(&f.arch, "arch", "x86_64", "same as -r")
	fl.StringVar(&f.kernel, "kernel", "", "default kernel of a machine image (aki-...), or true to make a kernel image")
	fl.StringVar(&f.ramdisk, "ramdisk", "", "default ramdisk of a machine image (ari-...), or true to make a ramdisk image")
	fl.StringVar(&f.typ, "type", "", "image type: machine (default), kernel or ramdisk")
	fl.StringVar(&f.img.Name, "p", "", "the image's name in the bundle (default: the file's name)")
	fl.StringVar(&f.img.Name, "prefix", "", "same as -p")
	fl.StringVar(&f.partSize, "part-size", "", "part size, such as 10M (default 10M)")
	fl.StringVar(&f.mappings, "B", "", "block device mappings of a machine image, as ami=sda1,root=/dev/sda1,swap=sda3")
	fl.StringVar(&f.mappings, "block-device-mappings", "", "same as -B")
}

// image checks the flags and returns the image.
func (f *imageFlags) image() (Image, error) {
	img := f.img
	if img.Path == "" {
		return img, usagef("no image file: pass -i IMAGE")
	}
	img.Arch = f.arch
	img.Type = f.typ
	switch img.Type {
	case "", bundle.TypeMachine, bundle.TypeKernel, bundle.TypeRamdisk:
	default:
		return img, usagef("-type %q: want machine, kernel or ramdisk", img.Type)
	}
	// euca2ools marks kernel and ramdisk images with --kernel true.
	if f.kernel == "true" {
		f.kernel = ""
		img.Type = setType(img.Type, bundle.TypeKernel, &f.kernelSet)
	}
	if f.ramdisk == "true" {
		f.ramdisk = ""
		img.Type = setType(img.Type, bundle.TypeRamdisk, &f.ramdiskSet)
	}
	if f.kernelSet && f.ramdiskSet {
		return img, usagef("an image cannot be both a kernel and a ramdisk")
	}
	img.KernelID, img.RamdiskID = f.kernel, f.ramdisk
	if (img.KernelID != "" || img.RamdiskID != "" || f.mappings != "") && img.Type != "" && img.Type != bundle.TypeMachine {
		return img, usagef("-kernel, -ramdisk and -B are for machine images, not %s images", img.Type)
	}
	if img.KernelID != "" && !strings.HasPrefix(img.KernelID, "aki-") {
		return img, usagef("-kernel %q is not a kernel image ID (aki-...)", img.KernelID)
	}
	if img.RamdiskID != "" && !strings.HasPrefix(img.RamdiskID, "ari-") {
		return img, usagef("-ramdisk %q is not a ramdisk image ID (ari-...)", img.RamdiskID)
	}
	if f.partSize != "" {
		n, err := ParseSize(f.partSize)
		if err != nil {
			return img, usagef("-part-size: %v", err)
		}
		img.PartSize = n
	}
	if f.mappings != "" {
		for _, kv := range strings.Split(f.mappings, ",") {
			v, d, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || v == "" || d == "" {
				return img, usagef("-B %q: want VIRTUAL=DEVICE,... such as ami=sda1,root=/dev/sda1", f.mappings)
			}
			img.Mappings = append(img.Mappings, bundle.Mapping{Virtual: v, Device: d})
		}
	}
	return img, nil
}

func setType(cur, want string, set *bool) string {
	*set = true
	if cur == "" {
		return want
	}
	return cur // a conflicting -type is reported by bundle.Create's checks
}

func (c *cli) bundleImage(args []string) error {
	fl := c.flags("-i IMAGE [-d DIR] [flags]")
	var f imageFlags
	f.add(fl)
	var dir string
	fl.StringVar(&dir, "d", "", "directory for the parts and manifest (default: a new temporary directory)")
	fl.StringVar(&dir, "destination", "", "same as -d")
	c.keyFlags(fl)
	c.connFlags(fl)
	if err := c.noPositional(args); err != nil {
		return err
	}
	img, err := f.image()
	if err != nil {
		return err
	}
	keys, err := c.keys()
	if err != nil {
		return err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "bundle-"); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "Writing the bundle into %s\n", dir)
	}
	manifest, err := BundleImage(c.ctx, img, keys, dir, c.stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, manifest)
	return nil
}

// noPositional parses args, which must hold only flags.
func (c *cli) noPositional(args []string) error {
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	return nil
}

// placeFlag adds -b/-bucket.
func placeFlag(fl *flag.FlagSet, v *string) {
	fl.StringVar(v, "b", "", "BUCKET or BUCKET/PREFIX")
	fl.StringVar(v, "bucket", "", "same as -b")
}

// manifestFlag adds -m/-manifest.
func manifestFlag(fl *flag.FlagSet, v *string, what string) {
	fl.StringVar(v, "m", "", what)
	fl.StringVar(v, "manifest", "", "same as -m")
}

func requirePlace(s string) (Place, error) {
	if s == "" {
		return Place{}, usagef("no bucket: pass -b BUCKET[/PREFIX]")
	}
	p, err := ParsePlace(s)
	if err != nil {
		return p, usagef("-b: %v", err)
	}
	return p, nil
}

// bundleArgs parses the arguments of a verb on a bundle in a bucket into
// the flags bucket and manifest point at, checks them (no positional
// ones, -b and -m set; manifestForm names -m's value in the message) and
// returns the bundle's place and a client.
func (c *cli) bundleArgs(args []string, bucket, manifest *string, manifestForm string) (Place, *Client, error) {
	if err := c.noPositional(args); err != nil {
		return Place{}, nil, err
	}
	place, err := requirePlace(*bucket)
	if err != nil {
		return Place{}, nil, err
	}
	if *manifest == "" {
		return Place{}, nil, usagef("no manifest: pass -m %s", manifestForm)
	}
	cl, err := c.client()
	return place, cl, err
}

func (c *cli) uploadBundle(args []string) error {
	fl := c.flags("-b BUCKET[/PREFIX] -m MANIFEST [flags]")
	var bucket, manifest string
	placeFlag(fl, &bucket)
	manifestFlag(fl, &manifest, "the manifest file; its parts are beside it")
	c.connFlags(fl)
	place, cl, err := c.bundleArgs(args, &bucket, &manifest, "MANIFEST")
	if err != nil {
		return err
	}
	loc, err := cl.UploadBundle(c.ctx, manifest, place)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, loc)
	return nil
}

// registrationFlags adds the flags of RegisterImage but the location.
func registrationFlags(fl *flag.FlagSet, r *Registration, descShort bool) {
	fl.StringVar(&r.Name, "n", "", "the image's name")
	fl.StringVar(&r.Name, "name", "", "same as -n")
	fl.StringVar(&r.Description, "description", "", "the image's description")
	if descShort {
		fl.StringVar(&r.Description, "d", "", "same as -description")
	}
}

func (c *cli) register(args []string) error {
	fl := c.flags("BUCKET/[PREFIX/]NAME.manifest.xml -n NAME [flags]")
	var r Registration
	registrationFlags(fl, &r, true)
	fl.StringVar(&r.Arch, "a", "", "architecture (default: the manifest's)")
	fl.StringVar(&r.Arch, "arch", "", "same as -a")
	fl.StringVar(&r.KernelID, "kernel", "", "default kernel (aki-...)")
	fl.StringVar(&r.RamdiskID, "ramdisk", "", "default ramdisk (ari-...)")
	c.connFlags(fl)
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one image location, BUCKET/[PREFIX/]NAME.manifest.xml; got %d arguments", len(pos))
	}
	if r.Name == "" {
		return usagef("no image name: pass -n NAME")
	}
	r.Location = pos[0]
	cl, err := c.client()
	if err != nil {
		return err
	}
	id, err := cl.Register(c.ctx, r)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, id)
	return nil
}

func (c *cli) downloadBundle(args []string) error {
	fl := c.flags("-b BUCKET[/PREFIX] -m NAME.manifest.xml [-d DIR] [flags]")
	var bucket, manifest, dir string
	placeFlag(fl, &bucket)
	manifestFlag(fl, &manifest, "the manifest's name under the prefix")
	fl.StringVar(&dir, "d", "", "directory to download into (default: a new temporary directory)")
	fl.StringVar(&dir, "directory", "", "same as -d")
	c.connFlags(fl)
	place, cl, err := c.bundleArgs(args, &bucket, &manifest, "NAME.manifest.xml")
	if err != nil {
		return err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "bundle-"); err != nil {
			return err
		}
	}
	path, err := cl.DownloadBundle(c.ctx, place, manifest, dir)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, path)
	return nil
}

func (c *cli) unbundle(args []string) error {
	fl := c.flags("-m MANIFEST [-d DIR] [-privatekey KEY] [-cert CERT]")
	var manifest, dir string
	manifestFlag(fl, &manifest, "the manifest file; its parts are beside it")
	fl.StringVar(&dir, "d", ".", "directory to write the image into")
	fl.StringVar(&dir, "destination", ".", "same as -d")
	fl.StringVar(&c.privateKey, "privatekey", "", "the user's private key, PEM (default $EC2_PRIVATE_KEY)")
	fl.StringVar(&c.privateKey, "k", "", "same as -privatekey")
	fl.StringVar(&c.cert, "cert", "", "check the manifest's signature with this user certificate (default $EC2_CERT)")
	if err := c.noPositional(args); err != nil {
		return err
	}
	if manifest == "" {
		return usagef("no manifest: pass -m MANIFEST")
	}
	keyPath := c.env(c.privateKey, "EC2_PRIVATE_KEY")
	if keyPath == "" {
		return usagef("no private key: pass -privatekey or set EC2_PRIVATE_KEY")
	}
	key, err := LoadKey(keyPath)
	if err != nil {
		return err
	}
	var cert *x509.Certificate
	if p := c.env(c.cert, "EC2_CERT"); p != "" {
		if cert, err = LoadCert(p); err != nil {
			return err
		}
	}
	path, err := Unbundle(c.ctx, manifest, dir, key, cert, c.stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, path)
	return nil
}

func (c *cli) deleteBundle(args []string) error {
	fl := c.flags("-b BUCKET[/PREFIX] -m NAME.manifest.xml [-clear] [flags]")
	var bucket, manifest string
	var clear bool
	placeFlag(fl, &bucket)
	manifestFlag(fl, &manifest, "the manifest's name under the prefix (or a local copy of it)")
	fl.BoolVar(&clear, "clear", false, "delete the bucket too if it is empty afterwards")
	c.connFlags(fl)
	place, cl, err := c.bundleArgs(args, &bucket, &manifest, "NAME.manifest.xml")
	if err != nil {
		return err
	}
	return cl.DeleteBundle(c.ctx, place, manifest, clear)
}

func (c *cli) installImage(args []string) error {
	fl := c.flags("-i IMAGE -b BUCKET[/PREFIX] -n NAME [flags]")
	var f imageFlags
	f.add(fl)
	fl.StringVar(&f.arch, "a", "x86_64", "same as -r")
	var in Install
	var bucket string
	var noWait bool
	placeFlag(fl, &bucket)
	registrationFlags(fl, &in.Registration, false)
	fl.DurationVar(&in.Wait, "timeout", 30*time.Minute, "how long to wait for the image to become available")
	fl.BoolVar(&noWait, "no-wait", false, "do not wait: print the image ID once it is registered")
	c.keyFlags(fl)
	c.connFlags(fl)
	if err := c.noPositional(args); err != nil {
		return err
	}
	img, err := f.image()
	if err != nil {
		return err
	}
	if in.Dest, err = requirePlace(bucket); err != nil {
		return err
	}
	if in.Registration.Name == "" {
		return usagef("no image name: pass -n NAME")
	}
	if in.Wait <= 0 && !noWait {
		return usagef("-timeout %s: want a positive duration (or -no-wait)", in.Wait)
	}
	if noWait {
		in.Wait = 0
	}
	in.Image = img
	cl, err := c.client()
	if err != nil {
		return err
	}
	if in.Keys, err = c.keys(); err != nil {
		return err
	}
	id, err := cl.InstallImage(c.ctx, in)
	if err != nil {
		return err // it names the image if there is one
	}
	fmt.Fprintln(c.stdout, id)
	return nil
}
