package metadata

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	srcA       = netip.MustParseAddr("10.0.0.5")
	srcB       = netip.MustParseAddr("10.0.0.6")
	srcUnknown = netip.MustParseAddr("10.0.0.7")
	srcBroken  = netip.MustParseAddr("10.0.0.99")
	launched   = time.Date(2026, 3, 1, 10, 4, 5, 0, time.UTC)
)

// instA has every optional field; instB has none and requires tokens.
func instA() Instance {
	return Instance{
		ID: "i-0aaaaaaaaaaaaaaa1", ImageID: "ami-11111111", KernelID: "aki-22222222", RamdiskID: "ari-33333333",
		ManifestPath: "images/ubuntu.img.manifest.xml", LaunchIndex: 2, ReservationID: "r-0aaaaaaaaaaaaaaa1",
		InstanceType: "m1.small", Zone: "zone-a", Region: "koala-1", AccountID: "000000000001",
		PrivateIP: netip.MustParseAddr("10.0.0.5"), PrivateDNS: "ip-10-0-0-5.koala.internal",
		PublicIP: netip.MustParseAddr("192.0.2.10"), PublicDNS: "euca-192-0-2-10.koala.example",
		MAC: "D0:0D:AA:00:00:05", SecurityGroups: []string{"default", "web"},
		PublicKeys: []PublicKey{{Name: "alice", OpenSSH: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice\n"}},
		UserData:   []byte("#!/bin/sh\necho koala-marker\n"), LaunchTime: launched,
		HTTPTokens: TokensOptional, HTTPPutHopLimit: 1,
		BlockDevices: map[string]string{"ami": "sda1", "root": "/dev/sda1", "ephemeral0": "sda2", "swap": "sda3"},
	}
}

func instB() Instance {
	return Instance{
		ID: "i-0bbbbbbbbbbbbbbb2", ImageID: "ami-44444444", ManifestPath: "images/b.manifest.xml",
		ReservationID: "r-0bbbbbbbbbbbbbbb2", InstanceType: "c1.medium", Zone: "zone-b", Region: "koala-1",
		AccountID: "000000000002", PrivateIP: netip.MustParseAddr("10.0.0.6"), MAC: "d0:0d:bb:00:00:06",
		SecurityGroups: []string{"db"}, LaunchTime: launched, HTTPTokens: TokensRequired,
	}
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func fixture(t *testing.T) (*Service, *clock) {
	t.Helper()
	clk := &clock{t: launched.Add(time.Hour)}
	table := map[netip.Addr]Instance{srcA: instA(), srcB: instB()}
	lookup := LookupFunc(func(_ context.Context, src netip.Addr) (Instance, bool, error) {
		if src == srcBroken {
			return Instance{}, false, errors.New("store closed")
		}
		in, ok := table[src]
		return in, ok, nil
	})
	return New(Config{TokenKey: []byte("test key"), Now: clk.Now}, lookup, nil), clk
}

// do sends one request from src.
func do(t *testing.T, h http.Handler, method, path string, src netip.Addr, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "http://169.254.169.254"+path, nil)
	r.RemoteAddr = netip.AddrPortFrom(src, 40000).String()
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func token(t *testing.T, h http.Handler, src netip.Addr, ttl string) string {
	t.Helper()
	w := do(t, h, http.MethodPut, "/latest/api/token", src, map[string]string{TTLHeader: ttl})
	if w.Code != http.StatusOK {
		t.Fatalf("PUT token from %s: %d %s", src, w.Code, w.Body)
	}
	return w.Body.String()
}

func notFoundPage() string {
	return `<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
	"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>404 - Not Found</title>
 </head>
 <body>
  <h1>404 - Not Found</h1>
 </body>
</html>
`
}

func TestListings(t *testing.T) {
	s, _ := fixture(t)
	tokB := token(t, s, srcB, "60")
	lines := func(l ...string) string { return strings.Join(l, "\n") }
	tests := []struct {
		name string
		src  netip.Addr
		path string
		want string
	}{
		{"root", srcA, "/", strings.Join(versions, "\n")},
		{"latest", srcA, "/latest/", lines("dynamic/", "meta-data/", "user-data")},
		{"latest without user-data", srcB, "/latest/", lines("dynamic/", "meta-data/")},
		{"meta-data full", srcA, "/latest/meta-data/", lines(
			"ami-id", "ami-launch-index", "ami-manifest-path", "block-device-mapping/", "hostname",
			"instance-action", "instance-id", "instance-life-cycle", "instance-type", "kernel-id",
			"local-hostname", "local-ipv4", "mac", "network/", "placement/", "public-hostname",
			"public-ipv4", "public-keys/", "ramdisk-id", "reservation-id", "security-groups", "services/")},
		{"meta-data minimal", srcB, "/latest/meta-data/", lines(
			"ami-id", "ami-launch-index", "ami-manifest-path", "hostname",
			"instance-action", "instance-id", "instance-life-cycle", "instance-type",
			"local-hostname", "local-ipv4", "mac", "network/", "placement/",
			"reservation-id", "security-groups", "services/")},
		{"dated version", srcA, "/2009-04-04/meta-data/placement/", lines("availability-zone", "region")},
		{"block-device-mapping", srcA, "/latest/meta-data/block-device-mapping/", lines("ami", "ephemeral0", "root", "swap")},
		{"placement", srcA, "/latest/meta-data/placement/", lines("availability-zone", "region")},
		{"public-keys", srcA, "/latest/meta-data/public-keys/", "0=alice"},
		{"public-keys/0", srcA, "/latest/meta-data/public-keys/0/", "openssh-key"},
		{"network", srcA, "/latest/meta-data/network/", "interfaces/"},
		{"macs", srcA, "/latest/meta-data/network/interfaces/macs/", "d0:0d:aa:00:00:05/"},
		{"mac dir", srcA, "/latest/meta-data/network/interfaces/macs/d0:0d:aa:00:00:05/", lines(
			"device-number", "local-hostname", "local-ipv4s", "mac", "owner-id", "public-hostname",
			"public-ipv4s", "security-groups")},
		{"mac dir without public address", srcB, "/latest/meta-data/network/interfaces/macs/d0:0d:bb:00:00:06/", lines(
			"device-number", "local-hostname", "local-ipv4s", "mac", "owner-id", "security-groups")},
		{"services", srcA, "/latest/meta-data/services/", lines("domain", "partition")},
		{"dynamic", srcA, "/latest/dynamic/", "instance-identity/"},
		{"instance-identity", srcA, "/latest/dynamic/instance-identity/", "document"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.src == srcB {
				hdr[TokenHeader] = tokB
			}
			w := do(t, s, http.MethodGet, tc.path, tc.src, hdr)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d, body %q", w.Code, w.Body)
			}
			if got := w.Body.String(); got != tc.want {
				t.Errorf("body\n%s\nwant\n%s", got, tc.want)
			}
			if ct := w.Header().Get("Content-Type"); ct != "text/plain" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestLeaves(t *testing.T) {
	s, _ := fixture(t)
	tokB := token(t, s, srcB, "60")
	tests := []struct {
		name string
		src  netip.Addr
		path string
		want string
	}{
		{"ami-id", srcA, "ami-id", "ami-11111111"},
		{"ami-launch-index", srcA, "ami-launch-index", "2"},
		{"ami-manifest-path", srcA, "ami-manifest-path", "images/ubuntu.img.manifest.xml"},
		{"bdm ami", srcA, "block-device-mapping/ami", "sda1"},
		{"bdm root", srcA, "block-device-mapping/root", "/dev/sda1"},
		{"bdm ephemeral0", srcA, "block-device-mapping/ephemeral0", "sda2"},
		{"hostname", srcA, "hostname", "ip-10-0-0-5.koala.internal"},
		{"hostname falls back to the IP", srcB, "hostname", "10.0.0.6"},
		{"instance-action", srcA, "instance-action", "none"},
		{"instance-id", srcA, "instance-id", "i-0aaaaaaaaaaaaaaa1"},
		{"instance-id B", srcB, "instance-id", "i-0bbbbbbbbbbbbbbb2"},
		{"instance-type", srcA, "instance-type", "m1.small"},
		{"kernel-id", srcA, "kernel-id", "aki-22222222"},
		{"ramdisk-id", srcA, "ramdisk-id", "ari-33333333"},
		{"local-hostname", srcA, "local-hostname", "ip-10-0-0-5.koala.internal"},
		{"local-ipv4", srcA, "local-ipv4", "10.0.0.5"},
		{"mac lower-cased", srcA, "mac", "d0:0d:aa:00:00:05"},
		{"nic device-number", srcA, "network/interfaces/macs/d0:0d:aa:00:00:05/device-number", "0"},
		{"nic local-ipv4s", srcA, "network/interfaces/macs/d0:0d:aa:00:00:05/local-ipv4s", "10.0.0.5"},
		{"nic mac", srcA, "network/interfaces/macs/d0:0d:aa:00:00:05/mac", "d0:0d:aa:00:00:05"},
		{"nic owner-id", srcA, "network/interfaces/macs/d0:0d:aa:00:00:05/owner-id", "000000000001"},
		{"nic public-ipv4s", srcA, "network/interfaces/macs/d0:0d:aa:00:00:05/public-ipv4s", "192.0.2.10"},
		{"nic security-groups", srcA, "network/interfaces/macs/d0:0d:aa:00:00:05/security-groups", "default\nweb"},
		{"availability-zone", srcA, "placement/availability-zone", "zone-a"},
		{"leaf with trailing slash", srcA, "placement/availability-zone/", "zone-a"},
		{"region", srcA, "placement/region", "koala-1"},
		{"public-hostname", srcA, "public-hostname", "euca-192-0-2-10.koala.example"},
		{"public-ipv4", srcA, "public-ipv4", "192.0.2.10"},
		{"openssh-key", srcA, "public-keys/0/openssh-key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice\n"},
		{"reservation-id", srcA, "reservation-id", "r-0aaaaaaaaaaaaaaa1"},
		{"security-groups", srcA, "security-groups", "default\nweb"},
		{"services/domain", srcA, "services/domain", "amazonaws.com"},
		{"services/partition", srcA, "services/partition", "aws"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.src == srcB {
				hdr[TokenHeader] = tokB
			}
			w := do(t, s, http.MethodGet, "/latest/meta-data/"+tc.path, tc.src, hdr)
			if w.Code != http.StatusOK || w.Body.String() != tc.want {
				t.Errorf("got %d %q, want 200 %q", w.Code, w.Body, tc.want)
			}
			if ct := w.Header().Get("Content-Type"); ct != "text/plain" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	s, _ := fixture(t)
	tokB := token(t, s, srcB, "60")
	tests := []struct {
		name string
		src  netip.Addr
		path string
	}{
		{"unknown top level", srcA, "/foo"},
		{"unknown version", srcA, "/1999-01-01/meta-data/"},
		{"unknown leaf", srcA, "/latest/meta-data/nope"},
		{"below a leaf", srcA, "/latest/meta-data/instance-id/x"},
		{"no kernel", srcB, "/latest/meta-data/kernel-id"},
		{"no ramdisk", srcB, "/latest/meta-data/ramdisk-id"},
		{"no public ipv4", srcB, "/latest/meta-data/public-ipv4"},
		{"no public hostname", srcB, "/latest/meta-data/public-hostname"},
		{"no public keys", srcB, "/latest/meta-data/public-keys/"},
		{"no block devices", srcB, "/latest/meta-data/block-device-mapping/"},
		{"no key 1", srcA, "/latest/meta-data/public-keys/1/openssh-key"},
		{"listing label is not a path", srcA, "/latest/meta-data/public-keys/0=alice"},
		{"other instance's mac", srcA, "/latest/meta-data/network/interfaces/macs/d0:0d:bb:00:00:06/"},
		{"no iam", srcA, "/latest/meta-data/iam/security-credentials/"},
		{"no user-data", srcB, "/latest/user-data"},
		{"empty segment", srcA, "/latest//meta-data/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.src == srcB {
				hdr[TokenHeader] = tokB
			}
			w := do(t, s, http.MethodGet, tc.path, tc.src, hdr)
			if w.Code != http.StatusNotFound {
				t.Fatalf("status %d, body %q", w.Code, w.Body)
			}
			if w.Body.String() != notFoundPage() {
				t.Errorf("body %q", w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "text/html" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestRedirectsDirectoryWithoutSlash(t *testing.T) {
	s, _ := fixture(t)
	for _, p := range []string{"/latest", "/latest/meta-data", "/latest/meta-data/placement", "/latest/meta-data/public-keys/0", "/latest/dynamic/instance-identity"} {
		t.Run(p, func(t *testing.T) {
			w := do(t, s, http.MethodGet, p, srcA, nil)
			if w.Code != http.StatusMovedPermanently {
				t.Fatalf("status %d", w.Code)
			}
			if loc := w.Header().Get("Location"); loc != "http://169.254.169.254"+p+"/" {
				t.Errorf("Location %q", loc)
			}
		})
	}
}

func TestUserData(t *testing.T) {
	s, _ := fixture(t)
	w := do(t, s, http.MethodGet, "/latest/user-data", srcA, nil)
	if w.Code != http.StatusOK || w.Body.String() != "#!/bin/sh\necho koala-marker\n" {
		t.Fatalf("got %d %q", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestIdentityDocument(t *testing.T) {
	s, _ := fixture(t)
	tokB := token(t, s, srcB, "60")
	tests := []struct {
		name string
		src  netip.Addr
		want map[string]any
	}{
		{"full", srcA, map[string]any{
			"accountId": "000000000001", "architecture": "x86_64", "availabilityZone": "zone-a",
			"billingProducts": nil, "devpayProductCodes": nil, "marketplaceProductCodes": nil,
			"imageId": "ami-11111111", "instanceId": "i-0aaaaaaaaaaaaaaa1", "instanceType": "m1.small",
			"kernelId": "aki-22222222", "pendingTime": "2026-03-01T10:04:05Z", "privateIp": "10.0.0.5",
			"ramdiskId": "ari-33333333", "region": "koala-1", "version": "2017-09-30",
		}},
		{"no kernel or ramdisk", srcB, map[string]any{
			"accountId": "000000000002", "architecture": "x86_64", "availabilityZone": "zone-b",
			"billingProducts": nil, "devpayProductCodes": nil, "marketplaceProductCodes": nil,
			"imageId": "ami-44444444", "instanceId": "i-0bbbbbbbbbbbbbbb2", "instanceType": "c1.medium",
			"kernelId": nil, "pendingTime": "2026-03-01T10:04:05Z", "privateIp": "10.0.0.6",
			"ramdiskId": nil, "region": "koala-1", "version": "2017-09-30",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(t, s, http.MethodGet, "/latest/dynamic/instance-identity/document", tc.src,
				map[string]string{TokenHeader: tokB})
			if tc.src == srcA { // A's request carries B's token: must fail
				if w.Code != http.StatusUnauthorized {
					t.Fatalf("foreign token: status %d", w.Code)
				}
				w = do(t, s, http.MethodGet, "/latest/dynamic/instance-identity/document", tc.src, nil)
			}
			if w.Code != http.StatusOK {
				t.Fatalf("status %d %q", w.Code, w.Body)
			}
			var got map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("decode %q: %v", w.Body, err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("%d fields, want %d: %s", len(got), len(tc.want), w.Body)
			}
			for k, v := range tc.want {
				if gv, ok := got[k]; !ok || gv != v {
					t.Errorf("%s = %v (present %v), want %v", k, gv, ok, v)
				}
			}
			if !strings.HasPrefix(w.Body.String(), "{\n  \"accountId\" : ") {
				t.Errorf("not EC2's layout: %q", w.Body)
			}
		})
	}
}

// TestIsolation walks every path of each instance's tree from the other
// instance's source: each sees only its own data.
func TestIsolation(t *testing.T) {
	s, _ := fixture(t)
	tokB := token(t, s, srcB, "60")
	secretsA := []string{"i-0aaaaaaaaaaaaaaa1", "alice", "koala-marker", "192.0.2.10", "d0:0d:aa", "000000000001"}
	secretsB := []string{"i-0bbbbbbbbbbbbbbb2", "ami-44444444", "d0:0d:bb", "000000000002", "zone-b"}
	var walk func(src netip.Addr, hdr map[string]string, path string, visit func(string, string))
	walk = func(src netip.Addr, hdr map[string]string, path string, visit func(string, string)) {
		w := do(t, s, http.MethodGet, path, src, hdr)
		if w.Code != http.StatusOK {
			t.Fatalf("%s from %s: %d", path, src, w.Code)
		}
		visit(path, w.Body.String())
		if !strings.HasSuffix(path, "/") {
			return
		}
		for _, line := range strings.Split(w.Body.String(), "\n") {
			name, _, _ := strings.Cut(line, "=")
			if strings.Contains(line, "=") {
				name += "/"
			}
			walk(src, hdr, path+name, visit)
		}
	}
	check := func(who string, forbidden []string) func(string, string) {
		return func(path, body string) {
			for _, f := range forbidden {
				if strings.Contains(path, f) || strings.Contains(body, f) {
					t.Errorf("%s read %q at %s", who, f, path)
				}
			}
		}
	}
	walk(srcA, nil, "/latest/", check("A", secretsB))
	walk(srcB, map[string]string{TokenHeader: tokB}, "/latest/", check("B", secretsA))
}

func TestUnknownSource(t *testing.T) {
	s, _ := fixture(t)
	tests := []struct {
		name, method, path string
		src                netip.Addr
		hdr                map[string]string
		want               int
	}{
		{"listing", http.MethodGet, "/latest/meta-data/", srcUnknown, nil, http.StatusNotFound},
		{"leaf", http.MethodGet, "/latest/meta-data/instance-id", srcUnknown, nil, http.StatusNotFound},
		{"root", http.MethodGet, "/", srcUnknown, nil, http.StatusNotFound},
		{"user-data", http.MethodGet, "/latest/user-data", srcUnknown, nil, http.StatusNotFound},
		{"token", http.MethodPut, "/latest/api/token", srcUnknown, map[string]string{TTLHeader: "60"}, http.StatusNotFound},
		{"lookup failure", http.MethodGet, "/latest/meta-data/instance-id", srcBroken, nil, http.StatusInternalServerError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(t, s, tc.method, tc.path, tc.src, tc.hdr)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d", w.Code, tc.want)
			}
			if tc.want == http.StatusNotFound && w.Body.String() != notFoundPage() {
				t.Errorf("body %q", w.Body)
			}
			if strings.Contains(w.Body.String(), "i-0") {
				t.Errorf("leaked an instance: %q", w.Body)
			}
		})
	}
	t.Run("no IP source", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/latest/meta-data/instance-id", nil)
		r.RemoteAddr = "@unix"
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusNotFound {
			t.Errorf("status %d", w.Code)
		}
	})
	t.Run("IPv4-mapped IPv6 source", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/latest/meta-data/instance-id", nil)
		r.RemoteAddr = "[::ffff:10.0.0.5]:40000"
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusOK || w.Body.String() != "i-0aaaaaaaaaaaaaaa1" {
			t.Errorf("got %d %q", w.Code, w.Body)
		}
	})
}

func TestMethods(t *testing.T) {
	s, _ := fixture(t)
	tests := []struct {
		name, method, path string
		hdr                map[string]string
		want               int
		allow              string
	}{
		{"GET token", http.MethodGet, "/latest/api/token", map[string]string{TTLHeader: "60"}, http.StatusMethodNotAllowed, "OPTIONS, PUT"},
		{"POST token", http.MethodPost, "/latest/api/token", map[string]string{TTLHeader: "60"}, http.StatusMethodNotAllowed, "OPTIONS, PUT"},
		{"OPTIONS token", http.MethodOptions, "/latest/api/token", nil, http.StatusOK, "OPTIONS, PUT"},
		{"POST meta-data", http.MethodPost, "/latest/meta-data/", nil, http.StatusMethodNotAllowed, "GET, HEAD, OPTIONS"},
		{"DELETE user-data", http.MethodDelete, "/latest/user-data", nil, http.StatusMethodNotAllowed, "GET, HEAD, OPTIONS"},
		{"PATCH root", http.MethodPatch, "/", nil, http.StatusMethodNotAllowed, "GET, HEAD, OPTIONS"},
		{"PUT token with slash", http.MethodPut, "/latest/api/token/", map[string]string{TTLHeader: "60"}, http.StatusForbidden, ""},
		{"PUT dated token", http.MethodPut, "/2021-03-23/api/token", map[string]string{TTLHeader: "60"}, http.StatusForbidden, ""},
		{"PUT meta-data", http.MethodPut, "/latest/meta-data/instance-id", nil, http.StatusForbidden, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(t, s, tc.method, tc.path, srcA, tc.hdr)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d", w.Code, tc.want)
			}
			if got := w.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			if tc.want == http.StatusForbidden && w.Body.Len() != 0 {
				t.Errorf("403 body %q, want empty", w.Body)
			}
		})
	}
	t.Run("HEAD", func(t *testing.T) {
		srv := httptest.NewServer(New(Config{}, loopbackAs(instA()), nil))
		defer srv.Close()
		resp, err := http.Head(srv.URL + "/latest/meta-data/instance-id")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len("i-0aaaaaaaaaaaaaaa1")) {
			t.Errorf("got %d, length %d", resp.StatusCode, resp.ContentLength)
		}
	})
}

// loopbackAs maps 127.0.0.1 (and ::1) to in.
func loopbackAs(in Instance) Lookup {
	return LookupFunc(func(_ context.Context, src netip.Addr) (Instance, bool, error) {
		return in, src.IsLoopback(), nil
	})
}

func TestTokenFlow(t *testing.T) {
	s, _ := fixture(t)
	w := do(t, s, http.MethodPut, "/latest/api/token", srcA, map[string]string{TTLHeader: "21600"})
	if w.Code != http.StatusOK {
		t.Fatalf("PUT: %d %q", w.Code, w.Body)
	}
	if got := w.Header().Get(TTLHeader); got != "21600" {
		t.Errorf("TTL echo %q", got)
	}
	tokA := w.Body.String()
	tokB := token(t, s, srcB, "60")
	if tokA == "" || tokA == tokB {
		t.Fatalf("tokens %q %q", tokA, tokB)
	}
	const iid = "/latest/meta-data/instance-id"
	tests := []struct {
		name string
		src  netip.Addr
		hdr  map[string]string
		want int
	}{
		{"v1 on optional", srcA, nil, http.StatusOK},
		{"v2 on optional", srcA, map[string]string{TokenHeader: tokA}, http.StatusOK},
		{"v1 on required", srcB, nil, http.StatusUnauthorized},
		{"v2 on required", srcB, map[string]string{TokenHeader: tokB}, http.StatusOK},
		{"other instance's token", srcB, map[string]string{TokenHeader: tokA}, http.StatusUnauthorized},
		{"other instance's token on optional", srcA, map[string]string{TokenHeader: tokB}, http.StatusUnauthorized},
		{"garbage token", srcA, map[string]string{TokenHeader: "AQIDBAUGBwgJ"}, http.StatusUnauthorized},
		{"empty token", srcA, map[string]string{TokenHeader: ""}, http.StatusUnauthorized},
		{"tampered token", srcA, map[string]string{TokenHeader: tamper(tokA)}, http.StatusUnauthorized},
		{"GET with X-Forwarded-For", srcA, map[string]string{"X-Forwarded-For": "203.0.113.1"}, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(t, s, http.MethodGet, iid, tc.src, tc.hdr)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d (%q)", w.Code, tc.want, w.Body)
			}
			if tc.want == http.StatusUnauthorized && !strings.Contains(w.Body.String(), "<title>401 - Unauthorized</title>") {
				t.Errorf("body %q", w.Body)
			}
		})
	}
}

func TestTokenTTLBounds(t *testing.T) {
	s, _ := fixture(t)
	tests := []struct {
		name string
		ttl  []string // nil: no header
		want int
	}{
		{"missing", nil, http.StatusBadRequest},
		{"empty", []string{""}, http.StatusBadRequest},
		{"zero", []string{"0"}, http.StatusBadRequest},
		{"negative", []string{"-1"}, http.StatusBadRequest},
		{"above six hours", []string{"21601"}, http.StatusBadRequest},
		{"huge", []string{"99999999999999999999"}, http.StatusBadRequest},
		{"not a number", []string{"abc"}, http.StatusBadRequest},
		{"fraction", []string{"1.5"}, http.StatusBadRequest},
		{"two headers", []string{"60", "60"}, http.StatusBadRequest},
		{"one second", []string{"1"}, http.StatusOK},
		{"six hours", []string{"21600"}, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPut, "/latest/api/token", nil)
			r.RemoteAddr = netip.AddrPortFrom(srcA, 40000).String()
			for _, v := range tc.ttl {
				r.Header.Add(TTLHeader, v)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d", w.Code, tc.want)
			}
			if tc.want == http.StatusOK && w.Header().Get(TTLHeader) != tc.ttl[0] {
				t.Errorf("TTL echo %q", w.Header().Get(TTLHeader))
			}
		})
	}
}

func TestTokenExpiry(t *testing.T) {
	s, clk := fixture(t)
	tok := token(t, s, srcB, "60")
	get := func() int {
		return do(t, s, http.MethodGet, "/latest/meta-data/instance-id", srcB, map[string]string{TokenHeader: tok}).Code
	}
	clk.Add(59*time.Second + 999*time.Millisecond)
	if c := get(); c != http.StatusOK {
		t.Fatalf("just before expiry: %d", c)
	}
	clk.Add(time.Millisecond)
	if c := get(); c != http.StatusUnauthorized {
		t.Fatalf("at expiry: %d", c)
	}
	if err := s.verifyToken(tok, instB().ID); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("verify: %v, want ErrTokenExpired", err)
	}
}

func TestTokenKey(t *testing.T) {
	s1, clk := fixture(t)
	tok := token(t, s1, srcA, "60")
	lookup := LookupFunc(func(context.Context, netip.Addr) (Instance, bool, error) { return instA(), true, nil })
	tests := []struct {
		name string
		key  []byte
		want int
	}{
		{"same key (another controller)", []byte("test key"), http.StatusOK},
		{"other key", []byte("other key"), http.StatusUnauthorized},
		{"random key", nil, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s2 := New(Config{TokenKey: tc.key, Now: clk.Now}, lookup, nil)
			w := do(t, s2, http.MethodGet, "/latest/meta-data/instance-id", srcA, map[string]string{TokenHeader: tok})
			if w.Code != tc.want {
				t.Errorf("status %d, want %d", w.Code, tc.want)
			}
		})
	}
}

func TestXForwardedForRefused(t *testing.T) {
	s, _ := fixture(t)
	for _, xff := range []string{"203.0.113.1", ""} {
		r := httptest.NewRequest(http.MethodPut, "/latest/api/token", nil)
		r.RemoteAddr = netip.AddrPortFrom(srcA, 40000).String()
		r.Header.Set(TTLHeader, "60")
		r.Header["X-Forwarded-For"] = []string{xff}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden || w.Body.Len() != 0 {
			t.Errorf("X-Forwarded-For %q: %d %q", xff, w.Code, w.Body)
		}
	}
}

func TestAccessLog(t *testing.T) {
	var buf bytes.Buffer
	s, _ := fixture(t)
	s.log = slog.New(slog.NewJSONHandler(&buf, nil))
	do(t, s, http.MethodGet, "/latest/meta-data/instance-id", srcA, nil)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("one JSON line: %v (%q)", err, buf.String())
	}
	if rec["instance_id"] != "i-0aaaaaaaaaaaaaaa1" || rec["status"] != float64(200) || rec["method"] != "GET" {
		t.Errorf("log line %v", rec)
	}
}

func TestEndpointDisabled(t *testing.T) {
	in := instA()
	in.Disabled = true
	s := New(Config{TokenKey: []byte("test key")}, loopbackAs(in), nil)
	lo := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct{ method, path string }{
		{http.MethodPut, "/latest/api/token"},
		{http.MethodGet, "/latest/meta-data/instance-id"},
		{http.MethodGet, "/latest/user-data"},
		{http.MethodGet, "/"},
	} {
		w := do(t, s, tc.method, tc.path, lo, map[string]string{TTLHeader: "60"})
		if w.Code != http.StatusForbidden || w.Body.Len() != 0 {
			t.Errorf("%s %s: %d %q, want an empty 403", tc.method, tc.path, w.Code, w.Body)
		}
	}
}

// tamper changes one character in the middle of a token (the last ones
// may carry only padding bits, and could already be what a fixed
// replacement writes).
func tamper(tok string) string {
	b := []byte(tok)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
