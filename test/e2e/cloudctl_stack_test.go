//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// stackWalrusConfig is walrus's configuration when cloudctl holds the
// accounts, as scripts/stack.sh writes it.
type stackWalrusConfig struct {
	Listen               string   `json:"listen"`
	DataDir              string   `json:"data_dir"`
	Region               string   `json:"region"`
	Domains              []string `json:"domains"`
	CloudctlURL          string   `json:"cloudctl_url"`
	ComponentCredentials string   `json:"component_credentials"`
}

// startStackWalrus starts walrus on port resolving keys through cloudctl
// with the component key `cloudctl admin init -walrus-key` wrote, and
// stops it when the test ends.
func startStackWalrus(t *testing.T, c *cloudctl, port string) *walrus {
	t.Helper()
	dir := t.TempDir()
	w := newWalrus(t, dir, filepath.Join(dir, "walrus.json"))
	w.setPort(port)
	err := writeJSON(w.config, stackWalrusConfig{
		Listen: w.addr, DataDir: w.dataDir, Region: "us-east-1", Domains: []string{"s3.localhost", "localhost"},
		CloudctlURL: c.endpoint, ComponentCredentials: c.walrusKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.start(); err != nil {
		t.Fatalf("start walrus: %v", err)
	}
	return w
}

// TestCloudctlStack runs cloudctl and walrus together as scripts/stack.sh
// does: walrus takes its accounts and keys from cloudctl.
func TestCloudctlStack(t *testing.T) {
	t.Parallel()
	require(t, fileAt(awsBin), onPath("openssl"))
	walrusPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s3URL := "http://" + net.JoinHostPort("127.0.0.1", walrusPort)
	c := startCloudctl(t, withS3URL(s3URL))
	w := startStackWalrus(t, c, walrusPort)
	ctx := t.Context()

	carol := c.createAccount(t, "carol")
	s3c := newSDKClient(w.endpoint, carol)
	const bucket = "carol-bucket"
	hello := []byte("hello from carol\n")

	t.Run("cloudctl account on walrus", func(t *testing.T) {
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatalf("CreateBucket as carol: %v", err)
		}
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("hello.txt"),
			Body: bytes.NewReader(hello)}); err != nil {
			t.Fatalf("PutObject as carol: %v", err)
		}
		if got := getObject(ctx, t, s3c, bucket, "hello.txt"); !bytes.Equal(got, hello) {
			t.Errorf("GetObject = %q, want %q", got, hello)
		}
		acl, err := s3c.GetBucketAcl(ctx, &s3.GetBucketAclInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(acl.Owner.ID); got != carol.CanonicalUserID {
			t.Errorf("bucket owner %s, want carol's canonical ID %s", got, carol.CanonicalUserID)
		}
		// Another account of the cloud cannot read it.
		dave := c.createAccount(t, "dave")
		_, err = newSDKClient(w.endpoint, dave).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("hello.txt")})
		if _, code := apiError(err); code != "AccessDenied" {
			t.Errorf("dave: GetObject of carol's object: %v, want AccessDenied", err)
		}
	})

	t.Run("deleted access key", func(t *testing.T) {
		second := c.createKey(t, "carol")
		s3Second := newSDKClient(w.endpoint, second)
		// Used once, so that walrus has it in its cache.
		if _, err := s3Second.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatalf("carol's second key on walrus: %v", err)
		}
		ec2Second := newEC2Client(c, second)
		if _, err := ec2Second.DescribeRegions(ctx, &ec2.DescribeRegionsInput{}); err != nil {
			t.Fatalf("carol's second key on cloudctl: %v", err)
		}

		c.deleteKey(t, second.AccessKeyID)
		deleted := time.Now()
		_, err := ec2Second.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
		wantAPIError(t, "cloudctl, right after the key was deleted", err, "AuthFailure")

		// walrus trusts a key it looked up for 5s (key_cache_ttl).
		var last error
		for {
			_, last = s3Second.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
			if last != nil || time.Since(deleted) > 15*time.Second {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		took := time.Since(deleted)
		if _, code := apiError(last); code != "InvalidAccessKeyId" {
			t.Fatalf("walrus %.1fs after the key was deleted: %v, want InvalidAccessKeyId", took.Seconds(), last)
		}
		if took > 10*time.Second {
			t.Errorf("walrus accepted a deleted key for %.1fs, want at most ~5s (its cache) and never 10s", took.Seconds())
		}
		t.Logf("walrus refused the deleted key %.1fs after the delete", took.Seconds())
		if _, err := s3c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Errorf("carol's first key on walrus after the second was deleted: %v", err)
		}
	})

	t.Run("credentials files", func(t *testing.T) {
		if _, err := newEC2Client(c, carol).CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("carol-key")}); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "carol-creds")
		c.adminRun(t, []string{"credentials", "carol"}, "-dir", dir)
		for _, f := range []string{"credentials", "config", "eucarc", "cert.pem", "pk.pem", "cloud-cert.pem"} {
			if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
				t.Errorf("credentials: %s missing or empty (%v)", f, err)
			}
		}

		// The aws CLI with the profile, and nothing else.
		home := t.TempDir()
		env := clientEnv(home,
			"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
			"AWS_CONFIG_FILE="+filepath.Join(dir, "config"),
			"AWS_PAGER=", "AWS_EC2_METADATA_DISABLED=true")
		var keys struct{ KeyPairs []cliKeyPair }
		out := run(t, env, awsBin, "--profile", "carol", "--endpoint-url", c.endpoint, "--output", "json",
			"ec2", "describe-key-pairs")
		if err := json.Unmarshal([]byte(out), &keys); err != nil {
			t.Fatalf("describe-key-pairs: %q: %v", out, err)
		}
		if len(keys.KeyPairs) != 1 || keys.KeyPairs[0].KeyName != "carol-key" {
			t.Errorf("describe-key-pairs with carol's profile = %+v, want carol-key", keys.KeyPairs)
		}
		out = run(t, env, awsBin, "--profile", "carol", "--endpoint-url", w.endpoint, "s3", "ls")
		if !strings.Contains(out, bucket) {
			t.Errorf("aws s3 ls with carol's profile: %q, want %s", out, bucket)
		}
		out = run(t, env, awsBin, "--profile", "carol", "--endpoint-url", w.endpoint, "s3", "cp", "s3://"+bucket+"/hello.txt", "-")
		if out != string(hello) {
			t.Errorf("aws s3 cp with carol's profile: %q, want %q", out, hello)
		}

		eucarc := map[string]string{}
		for _, l := range linesOf(readSmall(filepath.Join(dir, "eucarc"))) {
			if k, v, ok := strings.Cut(strings.TrimPrefix(l, "export "), "="); ok {
				eucarc[k] = v
			}
		}
		abs, _ := filepath.Abs(dir)
		for k, want := range map[string]string{
			"EC2_URL": "http://" + c.addr + "/", "S3_URL": s3URL, "AWS_DEFAULT_REGION": "us-east-1",
			"EC2_ACCOUNT_NUMBER": carol.AccountID, "EC2_CERT": filepath.Join(abs, "cert.pem"),
			"EC2_PRIVATE_KEY": filepath.Join(abs, "pk.pem"), "EUCALYPTUS_CERT": filepath.Join(abs, "cloud-cert.pem"),
		} {
			if eucarc[k] != want {
				t.Errorf("eucarc %s=%q, want %q", k, eucarc[k], want)
			}
		}
		if eucarc["AWS_ACCESS_KEY_ID"] == "" || eucarc["AWS_ACCESS_KEY_ID"] != eucarc["EC2_ACCESS_KEY"] {
			t.Errorf("eucarc access keys: AWS_ACCESS_KEY_ID=%q EC2_ACCESS_KEY=%q", eucarc["AWS_ACCESS_KEY_ID"], eucarc["EC2_ACCESS_KEY"])
		}

		oenv := clientEnv(home)
		cert, ca, pk := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "cloud-cert.pem"), filepath.Join(dir, "pk.pem")
		if out := run(t, oenv, "openssl", "verify", "-CAfile", ca, cert); strings.TrimSpace(out) != cert+": OK" {
			t.Errorf("openssl verify -CAfile cloud-cert.pem cert.pem: %q", out)
		}
		certPub := run(t, oenv, "openssl", "x509", "-in", cert, "-noout", "-pubkey")
		keyPub := run(t, oenv, "openssl", "pkey", "-in", pk, "-pubout")
		if certPub != keyPub {
			t.Errorf("pk.pem is not the key of cert.pem:\n%s\n%s", certPub, keyPub)
		}
		// The cloud certificate is a CA; the user's is not.
		if out := run(t, oenv, "openssl", "x509", "-in", ca, "-noout", "-ext", "basicConstraints"); !strings.Contains(out, "CA:TRUE") {
			t.Errorf("cloud-cert.pem basicConstraints: %q, want CA:TRUE", out)
		}
		if _, err := tryRun(t, oenv, "openssl", "verify", "-CAfile", cert, ca); err == nil {
			t.Errorf("cloud-cert.pem verifies against the user's cert.pem")
		}
	})
}
