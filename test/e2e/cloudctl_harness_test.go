//go:build e2e

package e2e

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The cloudctl binary is built on demand and shared by the tests that run
// at the same time; the last of them removes it. TestMain builds only
// walrus, and a test that needs neither should not pay for the build.
var cloudctlBuild struct {
	mu    sync.Mutex
	users int
	bin   string
}

// cloudctlBinary builds cloudctl (once for all tests running together) and
// returns its path. The binary lives until the last test using it ends.
func cloudctlBinary(t *testing.T) string {
	t.Helper()
	b := &cloudctlBuild
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.users == 0 {
		bin, err := goBuild("cloudctl")
		if err != nil {
			t.Fatal(err)
		}
		b.bin = bin
	}
	b.users++
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.users--; b.users == 0 {
			os.RemoveAll(filepath.Dir(b.bin))
			b.bin = ""
		}
	})
	return b.bin
}

// cloudctlConfig is cloudctl's configuration file.
type cloudctlConfig struct {
	Listen  string   `json:"listen"`
	DataDir string   `json:"data_dir"`
	Region  string   `json:"region"`
	Zones   []string `json:"zones"`
	S3URL   string   `json:"s3_url,omitempty"`
	// MetadataListen is 127.0.0.1:0: tests that start several cloudctls
	// at once must not share the default port.
	MetadataListen string `json:"metadata_listen"`
}

// cloudctl is one cloudctl process under test.
type cloudctl struct {
	*daemon
	dir       string
	dataDir   string
	config    string
	walrusKey string  // the component key `admin init -walrus-key` wrote
	admin     account // the account `admin init` printed
	s3URL     string
}

// cloudctlOption adjusts a cloudctl before it starts.
type cloudctlOption func(*cloudctl)

// withS3URL sets s3_url, walrus's endpoint written into credentials.
func withS3URL(u string) cloudctlOption { return func(c *cloudctl) { c.s3URL = u } }

// startCloudctl initializes a fresh cloud (`cloudctl admin init`), starts
// `cloudctl serve` on a free port and stops it when the test ends. On
// failure the test log gets the tail of cloudctl's log.
func startCloudctl(t *testing.T, opts ...cloudctlOption) *cloudctl {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, "cloudctl.json")
	c := &cloudctl{
		daemon:    newDaemon(t, "cloudctl", cloudctlBinary(t), filepath.Join(dir, "cloudctl.log"), "serve", "-config", config),
		dir:       dir,
		dataDir:   filepath.Join(dir, "data"),
		config:    config,
		walrusKey: filepath.Join(dir, "walrus-key.json"),
	}
	for _, o := range opts {
		o(c)
	}
	c.startOnFreePort(func(attempt int) error {
		err := writeJSON(c.config, cloudctlConfig{
			MetadataListen: "127.0.0.1:0",
			Listen:         c.addr, DataDir: c.dataDir, Region: "us-east-1", Zones: []string{"us-east-1a"}, S3URL: c.s3URL,
		})
		if err != nil {
			return err
		}
		if attempt == 0 {
			out, err := exec.Command(c.bin, "admin", "init", "-config", c.config, "-walrus-key", c.walrusKey).CombinedOutput()
			if err != nil {
				t.Fatalf("cloudctl admin init: %v\n%s", err, out)
			}
			c.admin = decodeAccount(t, "cloudctl admin init", out)
		}
		return nil
	})
	return c
}

// adminRun runs `cloudctl admin WORDS... -config CFG FLAGS...` against the
// running daemon and returns its standard output. Verbs and names come
// before the flags, as cloudctl wants them.
func (c *cloudctl) adminRun(t *testing.T, words []string, flags ...string) string {
	t.Helper()
	args := append([]string{"admin"}, words...)
	args = append(append(args, "-config", c.config), flags...)
	return run(t, clientEnv(c.dir), c.bin, args...)
}

// createAccount runs `cloudctl admin account create NAME`.
func (c *cloudctl) createAccount(t *testing.T, name string) account {
	t.Helper()
	out := c.adminRun(t, []string{"account", "create", name}, "-email", name+"@example.com")
	a := decodeAccount(t, "cloudctl admin account create "+name, []byte(out))
	if a.DisplayName != name {
		t.Errorf("cloudctl admin account create %s: display_name %q", name, a.DisplayName)
	}
	return a
}

// createKey runs `cloudctl admin access-key create ACCOUNT` and returns the
// account with the new key.
func (c *cloudctl) createKey(t *testing.T, name string) account {
	t.Helper()
	out := c.adminRun(t, []string{"access-key", "create", name})
	return decodeAccount(t, "cloudctl admin access-key create "+name, []byte(out))
}

// deleteKey runs `cloudctl admin access-key delete KEY-ID`.
func (c *cloudctl) deleteKey(t *testing.T, id string) {
	t.Helper()
	c.adminRun(t, []string{"access-key", "delete", id})
}

func decodeAccount(t *testing.T, what string, out []byte) account {
	t.Helper()
	var a account
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatalf("%s printed %q: %v", what, out, err)
	}
	if a.AccessKeyID == "" || a.SecretAccessKey == "" {
		t.Fatalf("%s printed no key pair: %s", what, out)
	}
	return a
}

// ec2Error is EC2's error document.
type ec2Error struct {
	XMLName xml.Name `xml:"Response"`
	Errors  []struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Errors>Error"`
	RequestID string `xml:"RequestID"`
}

// ec2ErrorCode returns the first error code of an EC2 error body, or "".
func ec2ErrorCode(body []byte) string {
	var e ec2Error
	if xml.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// cliErrorCode returns the code in the aws CLI's (or botocore's) error
// line "An error occurred (CODE) when calling the OP operation: ...".
func cliErrorCode(out string) string {
	_, rest, ok := strings.Cut(out, "An error occurred (")
	if !ok {
		return ""
	}
	code, _, _ := strings.Cut(rest, ")")
	return code
}

// digestAfterEquals returns what openssl's `dgst -c` printed after "= ",
// the colon-separated digest ("(stdin)= ab:cd" or "MD5(stdin)= ab:cd").
func digestAfterEquals(t *testing.T, out string) string {
	t.Helper()
	_, d, ok := strings.Cut(strings.TrimSpace(out), "= ")
	if !ok {
		t.Fatalf("openssl printed %q, want NAME(stdin)= DIGEST", out)
	}
	return strings.TrimSpace(d)
}

// shell runs script with sh -c, $1... set to args.
func shell(t *testing.T, env []string, script string, args ...string) string {
	t.Helper()
	return run(t, env, "sh", append([]string{"-c", "set -e; " + script, "sh"}, args...)...)
}

// sshFields returns the key type and base64 blob of an OpenSSH public key
// line, without its comment.
func sshFields(line string) (typ, blob string) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", ""
	}
	return f[0], f[1]
}
