package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/koala-cloud/koala/nodectl/internal/disks"
	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
	"github.com/koala-cloud/koala/nodectl/internal/hypervisor/fake"
	"github.com/koala-cloud/koala/nodectl/internal/hypervisor/libvirt"
	"github.com/koala-cloud/koala/nodectl/internal/node"
)

// Both drivers report their guests' host devices (the anti-spoofing
// filter matches them).
var (
	_ node.Ifacer = (*fake.Driver)(nil)
	_ node.Ifacer = (*libvirt.Driver)(nil)
)

// openDriver returns the hypervisor driver the configuration names and
// the disk maker that goes with it. The caller closes the driver when it
// is a hypervisor.Closer.
func openDriver(ctx context.Context, cfg Config, log *slog.Logger) (hypervisor.Driver, disks.Maker, error) {
	switch cfg.Driver {
	case DriverFake:
		log.Info("hypervisor driver", "driver", DriverFake)
		return fake.New().Driver(cfg.Name), disks.Sparse{}, nil
	case DriverLibvirt:
		d, err := libvirt.New(ctx, libvirt.Config{
			URI: cfg.LibvirtURI, Owner: cfg.Name, DomainType: cfg.DomainType,
			ProbeKernel: cfg.ProbeKernel, StateDir: probeDir(cfg.DataDir),
		}, log)
		if err != nil {
			return nil, nil, err
		}
		log.Info("hypervisor driver", "driver", DriverLibvirt, "uri", cfg.LibvirtURI, "domain_type", d.Describe())
		return d, disks.QemuImg{}, nil
	}
	return nil, nil, fmt.Errorf("unknown driver %q", cfg.Driver)
}

// sharedProbeDir keeps the domain-type probe's answer for every nodectl
// of this host until it reboots (the answer is keyed by boot ID), so
// that only the first one boots a probe guest.
const sharedProbeDir = "/run/koala"

func probeDir(dataDir string) string {
	if err := os.MkdirAll(sharedProbeDir, 0o755); err == nil {
		return sharedProbeDir
	}
	return dataDir
}
