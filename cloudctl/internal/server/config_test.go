package server

import "testing"

func TestValidateMetadataListen(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		ok     bool
	}{
		{"default", Defaults().MetadataListen, true},
		{"off", "", true},
		{"any port", "127.0.0.1:0", true},
		{"no port", "0.0.0.0", false},
		{"named port", "0.0.0.0:http", false},
		{"port out of range", "0.0.0.0:70000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.MetadataListen = tt.listen
			if err := cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate(%q) = %v, want ok %v", tt.listen, err, tt.ok)
			}
		})
	}
	if got := Defaults().MetadataListen; got != "0.0.0.0:8780" {
		t.Errorf("default metadata_listen %q", got)
	}
}
