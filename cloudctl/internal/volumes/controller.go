package volumes

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// Config tunes the controller.
type Config struct {
	// Credentials sign cloudctl's calls to ebs.
	Credentials api.Credentials
	// CallTimeout bounds one call (10s when 0).
	CallTimeout time.Duration
	// Poll is the reconcile period (5s when 0).
	Poll time.Duration
	// CreateTimeout is how long a volume may stay creating, its ebs
	// unreachable, before it ends in error (10m when 0).
	CreateTimeout time.Duration
}

func (c *Config) defaults() {
	if c.CallTimeout == 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.Poll == 0 {
		c.Poll = 5 * time.Second
	}
	if c.CreateTimeout == 0 {
		c.CreateTimeout = 10 * time.Minute
	}
}

// Controller makes each zone's ebs hold the volumes the records say.
type Controller struct {
	db   *store.DB
	cfg  Config
	log  *slog.Logger
	kick chan struct{}
	now  func() time.Time
}

// NewController returns a controller over cloudctl's database.
func NewController(db *store.DB, cfg Config, log *slog.Logger) *Controller {
	cfg.defaults()
	return &Controller{db: db, cfg: cfg, log: log, kick: make(chan struct{}, 1), now: time.Now}
}

// Kick asks for a reconcile soon; it never blocks.
func (c *Controller) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run reconciles every Poll and after each Kick until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Poll)
	defer t.Stop()
	for {
		c.Reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
	}
}

// ebs returns the client of a zone's ebs, or nil when it has none.
func (c *Controller) ebs(zone string) (*api.Client, error) {
	var cl clusters.Cluster
	err := c.db.View(func(tx *store.Tx) error {
		var err error
		cl, err = clusters.Get(tx, zone)
		return err
	})
	if err != nil || cl.EBS == "" {
		return nil, err
	}
	return &api.Client{BaseURL: cl.EBS, AccessKeyID: c.cfg.Credentials.AccessKeyID, Secret: c.cfg.Credentials.SecretAccessKey,
		HTTP: &http.Client{Timeout: c.cfg.CallTimeout}}, nil
}

// Reconcile creates and deletes on ebs what the records want.
func (c *Controller) Reconcile(ctx context.Context) {
	var all []Volume
	if err := c.db.View(func(tx *store.Tx) error { var err error; all, err = All(tx, ""); return err }); err != nil {
		c.log.Error("volumes: reading", "err", err)
		return
	}
	for _, v := range all {
		switch v.State {
		case Creating:
			c.create(ctx, v)
		case Deleting:
			c.delete(ctx, v)
		}
	}
}

// update changes a stored volume in one transaction when it is still in
// state from; fn edits it.
func (c *Controller) update(id, from string, fn func(v *Volume)) {
	err := c.db.Commit(func(tx *store.Tx) error {
		v, err := Get(tx, id)
		if err != nil || v.State != from {
			return nil
		}
		fn(&v)
		v.Since = c.now().UTC()
		if v.State == Deleted {
			return Delete(tx, id)
		}
		return Put(tx, v)
	})
	if err != nil {
		c.log.Error("volumes: storing", "volume_id", id, "err", err)
	}
}

func (c *Controller) fail(v Volume, reason string) {
	c.log.Warn("volume failed", "volume_id", v.ID, "reason", reason)
	c.update(v.ID, v.State, func(v *Volume) { v.State, v.Reason = Error, reason })
}

func (c *Controller) create(ctx context.Context, v Volume) {
	cl, err := c.ebs(v.Zone)
	if err == nil && cl == nil {
		c.fail(v, "Availability zone "+v.Zone+" has no volume service.")
		return
	}
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
		_, err = cl.CreateVolume(cctx, v.ID, api.VolumeRequest{SizeGiB: v.SizeGiB})
		cancel()
	}
	var ce *api.CallError
	switch {
	case err == nil:
		c.update(v.ID, Creating, func(v *Volume) { v.State = Available })
		c.log.Info("volume available", "volume_id", v.ID, "zone", v.Zone, "size_gib", v.SizeGiB)
	case errors.As(err, &ce) && ce.Status < 500:
		c.fail(v, ce.Code+": "+ce.Message)
	case c.now().Sub(v.Since) > c.cfg.CreateTimeout:
		c.fail(v, "The volume service of "+v.Zone+" could not be reached.")
	default:
		c.log.Warn("volume create: ebs unreachable; retrying", "volume_id", v.ID, "zone", v.Zone, "err", err)
	}
}

func (c *Controller) delete(ctx context.Context, v Volume) {
	cl, err := c.ebs(v.Zone)
	if err == nil && cl != nil {
		cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
		err = cl.DeleteVolume(cctx, v.ID)
		cancel()
	}
	var ce *api.CallError
	if err == nil || (errors.As(err, &ce) && ce.Code == "InvalidVolume.NotFound") {
		c.update(v.ID, Deleting, func(v *Volume) { v.State = Deleted })
		c.log.Info("volume deleted", "volume_id", v.ID)
		return
	}
	c.log.Warn("volume delete: ebs did not; retrying", "volume_id", v.ID, "zone", v.Zone, "err", err)
}
