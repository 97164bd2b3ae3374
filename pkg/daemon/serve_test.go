package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

type testConfig struct{ Listen, Data, Level string }

type testServer struct{ Server }

func TestServeCommand(t *testing.T) {
	var got testConfig
	cmd := ServeCommand[testConfig, *testServer]{
		Name: "testd",
		Load: func(path string) (testConfig, error) {
			if path == "bad" {
				return testConfig{}, errors.New("parse config bad")
			}
			return testConfig{Listen: "def:1", Data: "var/d", Level: "info"}, nil
		},
		Level: func(c testConfig) string { return c.Level },
		New: func(c testConfig, _ *slog.Logger) (*testServer, error) {
			got = c
			if c.Listen == "" {
				return nil, errors.New("listen is empty")
			}
			return nil, errors.New("stop here")
		},
		Overrides: []Override[testConfig]{
			ListenOverride(func(c *testConfig) *string { return &c.Listen }),
			{Flag: "data", Usage: "data directory", Field: func(c *testConfig) *string { return &c.Data }},
		},
	}
	tests := []struct {
		name     string
		usage    string
		args     []string
		code     int
		stderr   string
		wantConf testConfig
	}{
		{"bad flag", "", []string{"-nope"}, 2, "flag provided but not defined: -nope", testConfig{}},
		{"stray args ignored", "", []string{"extra"}, 1, "stop here", testConfig{"def:1", "var/d", "info"}},
		{"stray args refused", "usage: testd serve\n", []string{"extra"}, 2, "usage: testd serve\n", testConfig{}},
		{"load error", "", []string{"-config", "bad"}, 1, "testd: parse config bad\n", testConfig{}},
		{"overrides", "", []string{"-listen", "x:2", "-data", "/d"}, 1, "stop here", testConfig{"x:2", "/d", "info"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got = testConfig{}
			c := cmd
			c.Usage = tc.usage
			var stderr bytes.Buffer
			if code := c.Run(context.Background(), tc.args, &stderr); code != tc.code {
				t.Fatalf("code %d, want %d: %s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.stderr)
			}
			if got != tc.wantConf {
				t.Errorf("config %+v, want %+v", got, tc.wantConf)
			}
		})
	}
}

func TestServeCommandBadLevel(t *testing.T) {
	cmd := ServeCommand[testConfig, *testServer]{
		Name:  "testd",
		Load:  func(string) (testConfig, error) { return testConfig{Level: "loud"}, nil },
		Level: func(c testConfig) string { return c.Level },
		New:   func(testConfig, *slog.Logger) (*testServer, error) { t.Fatal("New called"); return nil, nil },
	}
	var stderr bytes.Buffer
	if code := cmd.Run(context.Background(), nil, &stderr); code != 1 || !strings.HasPrefix(stderr.String(), "testd: log_level: ") {
		t.Fatalf("code %d: %q", code, stderr.String())
	}
}
