// Package config holds what every daemon's configuration file shares:
// JSON read over defaults, and durations written as "15m".
package config

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Duration is a time.Duration written as "15m" in JSON.
type Duration struct{ time.Duration }

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	d.Duration = v
	return err
}

// Load reads the JSON file at path into v, which holds the defaults;
// fields the file does not name keep them. Unknown fields are an error,
// so that a misspelt setting does not pass silently.
func Load(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("parse config %s: %w", path, err)
	}
	return nil
}

// Path picks a daemon's configuration file: the one given on the command
// line, else the one in the environment variable env, else def when that
// file exists. "" means none: run with the defaults.
func Path(given, env, def string) string {
	if given != "" {
		return given
	}
	if p := os.Getenv(env); p != "" {
		return p
	}
	if _, err := os.Stat(def); err == nil {
		return def
	}
	return ""
}

// Find reads a daemon's configuration: the file Path picks, over
// defaults(); the defaults alone when there is none.
func Find[C any](given, env, def string, defaults func() C) (C, error) {
	cfg := defaults()
	path := Path(given, env, def)
	if path == "" {
		return cfg, nil
	}
	err := Load(path, &cfg)
	return cfg, err
}
