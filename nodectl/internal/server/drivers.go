package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/koala-cloud/koala/nodectl/internal/disks"
	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
	"github.com/koala-cloud/koala/nodectl/internal/hypervisor/fake"
	"github.com/koala-cloud/koala/nodectl/internal/hypervisor/libvirt"
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
			ProbeKernel: cfg.ProbeKernel, StateDir: cfg.DataDir,
		}, log)
		if err != nil {
			return nil, nil, err
		}
		log.Info("hypervisor driver", "driver", DriverLibvirt, "uri", cfg.LibvirtURI, "domain_type", d.Describe())
		return d, disks.QemuImg{}, nil
	}
	return nil, nil, fmt.Errorf("unknown driver %q", cfg.Driver)
}
