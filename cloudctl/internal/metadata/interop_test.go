package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// counting counts the token exchanges a client made.
type counting struct {
	h         http.Handler
	puts      atomic.Int64 // PUT /latest/api/token
	tokenGets atomic.Int64 // GETs carrying a token
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && r.URL.Path == tokenPath {
		c.puts.Add(1)
	}
	if r.Method == http.MethodGet && r.Header.Get(TokenHeader) != "" {
		c.tokenGets.Add(1)
	}
	c.h.ServeHTTP(w, r)
}

// interopServer serves instA, with tokens required so that a client that
// reads anything has done the IMDSv2 exchange, to 127.0.0.1, in zone
// koala-1a of region koala-1.
func interopServer(t *testing.T) (*httptest.Server, *counting) {
	t.Helper()
	in := instA()
	in.HTTPTokens = TokensRequired
	in.Zone = "koala-1a"
	c := &counting{h: New(Config{}, loopbackAs(in), nil)}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv, c
}

func TestSDKInterop(t *testing.T) {
	srv, c := interopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := imds.New(imds.Options{Endpoint: srv.URL})

	t.Run("GetMetadata instance-id", func(t *testing.T) {
		out, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Content.Close()
		if b, _ := io.ReadAll(out.Content); string(b) != "i-0aaaaaaaaaaaaaaa1" {
			t.Errorf("instance-id %q", b)
		}
	})
	t.Run("GetMetadata listing", func(t *testing.T) {
		out, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: "placement/"})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Content.Close()
		if b, _ := io.ReadAll(out.Content); string(b) != "availability-zone\nregion" {
			t.Errorf("placement/ %q", b)
		}
	})
	t.Run("GetUserData", func(t *testing.T) {
		out, err := client.GetUserData(ctx, &imds.GetUserDataInput{})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Content.Close()
		if b, _ := io.ReadAll(out.Content); string(b) != "#!/bin/sh\necho koala-marker\n" {
			t.Errorf("user-data %q", b)
		}
	})
	t.Run("GetInstanceIdentityDocument", func(t *testing.T) {
		out, err := client.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
		if err != nil {
			t.Fatal(err)
		}
		d := out.InstanceIdentityDocument
		if d.InstanceID != "i-0aaaaaaaaaaaaaaa1" || d.AccountID != "000000000001" || d.Region != "koala-1" ||
			d.AvailabilityZone != "koala-1a" || d.PrivateIP != "10.0.0.5" || d.ImageID != "ami-11111111" ||
			d.KernelID != "aki-22222222" || d.Architecture != "x86_64" || d.Version != "2017-09-30" ||
			!d.PendingTime.Equal(launched) {
			t.Errorf("document %+v", d)
		}
	})
	t.Run("GetRegion", func(t *testing.T) {
		out, err := client.GetRegion(ctx, &imds.GetRegionInput{})
		if err != nil {
			t.Fatal(err)
		}
		if out.Region != "koala-1" {
			t.Errorf("region %q", out.Region)
		}
	})
	t.Run("missing path is a 404", func(t *testing.T) {
		_, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: "iam/security-credentials/"})
		var status interface{ HTTPStatusCode() int }
		if err == nil || !errors.As(err, &status) || status.HTTPStatusCode() != http.StatusNotFound {
			t.Errorf("err %v, want a 404", err)
		}
	})
	if c.puts.Load() == 0 || c.tokenGets.Load() == 0 {
		t.Errorf("no IMDSv2 exchange: %d token PUTs, %d GETs with a token", c.puts.Load(), c.tokenGets.Load())
	}
}

// TestBotocoreInterop runs botocore's IMDS fetchers (Debian's
// python3-botocore) against the handler.
func TestBotocoreInterop(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import botocore.utils").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("botocore is required in CI (apt-get install python3-botocore): %v", err)
		}
		t.Skipf("no %s with botocore: %v", python, err)
	}
	srv, c := interopServer(t)
	script, err := filepath.Abs(filepath.Join("testdata", "botocore_imds.py"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, script)
	home := t.TempDir()
	cmd.Env = []string{
		"PATH=/usr/bin:/bin",
		"HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + srv.URL + "/",
		"NO_PROXY=*",
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("botocore script: %v\n%s", err, stderr)
	}
	var got struct {
		Botocore    string         `json:"botocore"`
		BaseURL     string         `json:"base_url"`
		Region      *string        `json:"region"`
		TokenLen    int            `json:"token_len"`
		InstanceID  string         `json:"instance_id"`
		Credentials map[string]any `json:"credentials"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	t.Logf("botocore %s against %s", got.Botocore, got.BaseURL)
	if got.BaseURL != srv.URL+"/" {
		t.Errorf("botocore used %q, not the test endpoint", got.BaseURL)
	}
	// botocore's region is the availability zone less its last letter.
	if got.Region == nil || *got.Region != "koala-1" {
		t.Errorf("region %v, want koala-1", got.Region)
	}
	if got.TokenLen == 0 || got.InstanceID != "i-0aaaaaaaaaaaaaaa1" {
		t.Errorf("token length %d, instance-id %q", got.TokenLen, got.InstanceID)
	}
	if len(got.Credentials) != 0 {
		t.Errorf("credentials %v without a role", got.Credentials)
	}
	if c.puts.Load() < 3 || c.tokenGets.Load() < 2 {
		t.Errorf("token exchange: %d PUTs, %d GETs with a token", c.puts.Load(), c.tokenGets.Load())
	}
}
