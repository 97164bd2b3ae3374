package fake

import (
	"path/filepath"
	"testing"

	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
	"github.com/koala-cloud/koala/nodectl/internal/hypervisor/drivertest"
)

func TestConformance(t *testing.T) {
	h := New()
	drivertest.Run(t, drivertest.Harness{
		New: func(t *testing.T, owner string) hypervisor.Driver { return h.Driver(owner) },
		Domain: func(t *testing.T, name string) hypervisor.Domain {
			return hypervisor.Domain{Name: name, Cores: 1, MemoryMiB: 128, Serial: name,
				ConsolePath: filepath.Join(t.TempDir(), "console.log")}
		},
		BootLine: "koala-demo: instance",
	})
}
