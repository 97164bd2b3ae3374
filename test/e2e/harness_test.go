//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// walrusBin is the walrus binary TestMain builds once for the whole suite.
var walrusBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	bin, err := goBuild("walrus")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(filepath.Dir(bin))
	walrusBin = bin
	return m.Run()
}

// goTool is the go command: go test puts GOROOT/bin on PATH.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// moduleRoot is the directory holding go.mod, found upward from here.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// goBuild builds the module's command ./name into a new temporary
// directory and returns the binary's path; the caller removes
// filepath.Dir of it.
func goBuild(name string) (string, error) {
	dir, err := os.MkdirTemp("", name+"-e2e-bin-")
	if err != nil {
		return "", err
	}
	root, err := moduleRoot()
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command(goTool(), "build", "-o", bin, "./"+name)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build ./%s: %v\n%s", name, err, out)
	}
	return bin, nil
}

// account is what `walrus admin account create` prints.
type account struct {
	AccountID       string `json:"account_id"`
	CanonicalUserID string `json:"canonical_user_id"`
	DisplayName     string `json:"display_name"`
	Email           string `json:"email"`
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
}

// walrus is one walrus process under test, with its configuration, data
// directory and two accounts.
type walrus struct {
	*daemon
	dataDir string
	config  string
	a, b    account // two unrelated accounts
}

type walrusConfig struct {
	Listen       string   `json:"listen"`
	DataDir      string   `json:"data_dir"`
	AccountsFile string   `json:"accounts_file"`
	Region       string   `json:"region"`
	Domains      []string `json:"domains"`
}

// newWalrus returns a walrus, not yet started, that keeps its data and log
// in dir and reads its configuration from config. It is stopped when the
// test ends.
func newWalrus(t *testing.T, dir, config string) *walrus {
	return &walrus{
		daemon:  newDaemon(t, "walrus", walrusBin, filepath.Join(dir, "walrus.log"), "serve", "-config", config),
		dataDir: filepath.Join(dir, "data"),
		config:  config,
	}
}

// startWalrus starts a walrus with a fresh data directory and two
// accounts, and stops it when the test ends. On failure the test log gets
// the tail of walrus's log.
func startWalrus(t *testing.T) *walrus {
	t.Helper()
	dir := t.TempDir()
	w := newWalrus(t, dir, filepath.Join(dir, "config.json"))
	w.startOnFreePort(func(int) error {
		err := writeJSON(w.config, walrusConfig{
			Listen: w.addr, DataDir: w.dataDir, AccountsFile: filepath.Join(dir, "accounts.json"),
			Region: "us-east-1", Domains: []string{"s3.localhost"},
		})
		if err != nil {
			return err
		}
		if w.a.AccessKeyID == "" {
			w.a = w.createAccount("alice")
			w.b = w.createAccount("bob")
		}
		return nil
	})
	return w
}

func (w *walrus) createAccount(name string) account {
	w.t.Helper()
	out, err := exec.Command(walrusBin, "admin", "account", "create", name,
		"-email", name+"@example.com", "-config", w.config).CombinedOutput()
	if err != nil {
		w.t.Fatalf("walrus admin account create %s: %v\n%s", name, err, out)
	}
	var a account
	if err := json.Unmarshal(out, &a); err != nil {
		w.t.Fatalf("walrus admin account create %s printed %q: %v", name, out, err)
	}
	if a.AccessKeyID == "" || a.SecretAccessKey == "" || a.CanonicalUserID == "" {
		w.t.Fatalf("walrus admin account create %s printed an incomplete account: %s", name, out)
	}
	return a
}

// Prerequisites.

// prereq is an external program or module a test needs.
type prereq struct {
	what  string
	check func() error
}

func fileAt(path string) prereq {
	return prereq{what: path, check: func() error {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not executable", path)
		}
		return nil
	}}
}

func pythonModule(module string) prereq {
	return prereq{what: "/usr/bin/python3 module " + module, check: func() error {
		out, err := exec.Command("/usr/bin/python3", "-c", "import "+module).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		}
		return nil
	}}
}

func onPath(name string) prereq {
	return prereq{what: name, check: func() error {
		_, err := exec.LookPath(name)
		return err
	}}
}

// require skips the test when a prerequisite is missing, or fails it when
// CI=true, where everything must be installed.
func require(t *testing.T, reqs ...prereq) {
	t.Helper()
	var missing []string
	for _, r := range reqs {
		if err := r.check(); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%v)", r.what, err))
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("missing prerequisites: %s; scripts/install-deps.sh installs them", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// External commands.

// cmdTimeout bounds each external client invocation.
const cmdTimeout = 5 * time.Minute

// run runs a command and fails the test if it fails, returning its
// standard output. Failure messages carry the combined output.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	stdout, err := tryRun(t, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return stdout
}

// tryRun runs a command, returning its standard output, or an error that
// holds the command line and its combined output.
func tryRun(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stdout bytes.Buffer
	combined := &lockedBuffer{}
	cmd.Stdout = io.MultiWriter(&stdout, combined)
	cmd.Stderr = combined
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\n--- output:\n%s", name, strings.Join(args, " "), err, combined.String())
	}
	return stdout.String(), nil
}

// lockedBuffer is a buffer two goroutines (exec's stdout and stderr
// copiers) may write at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// clientEnv is the environment for an external client: the test's own
// without anything that configures AWS clients, Python or proxies, with
// HOME set to home, plus extra.
func clientEnv(home string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch uk := strings.ToUpper(k); {
		case strings.HasPrefix(uk, "AWS_"), strings.HasPrefix(uk, "BOTO"), strings.HasPrefix(uk, "PYTHON"),
			strings.HasPrefix(uk, "S3CMD"), strings.HasSuffix(uk, "_PROXY"), uk == "HOME", uk == "CURL_HOME":
			continue
		}
		env = append(env, kv)
	}
	return append(env, append([]string{"HOME=" + home, "PYTHONNOUSERSITE=1", "LC_ALL=C.UTF-8"}, extra...)...)
}

// curl fetches url with the curl binary into a file in dir, returning the
// HTTP status and the file's path. args go before the URL.
func curl(t *testing.T, dir, url string, args ...string) (int, string) {
	t.Helper()
	out, err := os.CreateTemp(dir, "curl-*")
	if err != nil {
		t.Fatal(err)
	}
	out.Close()
	argv := append([]string{"-sS", "-o", out.Name(), "-w", "%{http_code}"}, args...)
	argv = append(argv, url)
	stdout := run(t, clientEnv(dir), "curl", argv...)
	var code int
	if _, err := fmt.Sscanf(stdout, "%d", &code); err != nil {
		t.Fatalf("curl %s: status %q: %v", url, stdout, err)
	}
	return code, out.Name()
}

// Content.

// randomBytes returns n bytes from a generator seeded with seed.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 0xe2, 0xe0})
	_, _ = r.Read(b)
	return b
}

// writeRandomFile writes n random bytes to path and returns their sha256.
func writeRandomFile(t *testing.T, path string, n int, seed uint64) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	data := randomBytes(seed, n)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return sha256Hex(data)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// multipartETag is S3's ETag of an object uploaded in parts of partSize:
// the MD5 of the parts' MD5s, a dash, the number of parts.
func multipartETag(data []byte, partSize int) string {
	var sums []byte
	n := 0
	for off := 0; off < len(data) || n == 0; off += partSize {
		end := min(off+partSize, len(data))
		s := md5.Sum(data[off:end])
		sums = append(sums, s[:]...)
		n++
	}
	return fmt.Sprintf("%s-%d", md5Hex(sums), n)
}

// linesOf splits output into non-empty trimmed lines.
func linesOf(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// unquote strips the quotes around an ETag.
func unquote(etag string) string { return strings.Trim(etag, `"`) }
