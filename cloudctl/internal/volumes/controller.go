package volumes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/cloudctl/internal/reconcile"
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
	// unreachable, before it ends in error (10m when 0); an attach that
	// long undone is given up too.
	CreateTimeout time.Duration
	// AttachTimeout bounds a call that attaches or detaches a volume on a
	// node (1m when 0): the guest must let go of a detached disk.
	AttachTimeout time.Duration
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
	if c.AttachTimeout == 0 {
		c.AttachTimeout = time.Minute
	}
}

// Controller makes each zone's ebs hold the volumes the records say.
type Controller struct {
	db   *store.DB
	cfg  Config
	log  *slog.Logger
	loop *reconcile.Loop
	now  func() time.Time
}

// NewController returns a controller over cloudctl's database.
func NewController(db *store.DB, cfg Config, log *slog.Logger) *Controller {
	cfg.defaults()
	return &Controller{db: db, cfg: cfg, log: log, loop: reconcile.New(), now: time.Now}
}

// Kick asks for a reconcile soon; it never blocks.
func (c *Controller) Kick() { c.loop.Kick() }

// Run reconciles every Poll and after each Kick until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	c.loop.Run(ctx, func(ctx context.Context) time.Duration {
		c.Reconcile(ctx)
		return c.cfg.Poll
	})
}

// ebs returns the client of a zone's ebs, or nil when it has none.
func (c *Controller) ebs(zone string) (*api.Client, error) {
	return clusters.EBS(c.db, zone, c.cfg.Credentials, c.cfg.CallTimeout)
}

// Reconcile creates and deletes on ebs what the records want.
func (c *Controller) Reconcile(ctx context.Context) {
	var all []Volume
	if err := c.db.View(func(tx *store.Tx) error { var err error; all, err = All(tx, ""); return err }); err != nil {
		c.log.Error("volumes: reading", "err", err)
		return
	}
	for _, v := range all {
		switch {
		case v.State == Creating:
			c.create(ctx, v)
		case v.State == Deleting:
			c.delete(ctx, v)
		case v.Attachment != nil && v.Attachment.State == Attaching:
			c.attach(ctx, v)
		case v.Attachment != nil && v.Attachment.State == Detaching:
			c.detach(ctx, v)
		}
	}
}

// cluster returns the client of a zone's cluster.
func (c *Controller) cluster(zone string) (*api.Client, error) {
	cl, err := clusters.Lookup(c.db, zone)
	if err != nil {
		return nil, err
	}
	return api.NewClient(cl.URL, c.cfg.Credentials, c.cfg.AttachTimeout), nil
}

// updateAttachment changes a volume whose attachment is still in state
// from; fn edits the volume.
func (c *Controller) updateAttachment(id, from string, fn func(v *Volume)) {
	err := c.db.Commit(func(tx *store.Tx) error {
		v, err := Get(tx, id)
		if err != nil || v.Attachment == nil || v.Attachment.State != from {
			return nil
		}
		fn(&v)
		v.Since = c.now().UTC()
		return Put(tx, v)
	})
	if err != nil {
		c.log.Error("volumes: storing", "volume_id", id, "err", err)
	}
}

// nodeRequest is what the instance's node needs to attach or detach v.
func (c *Controller) nodeRequest(ctx context.Context, v Volume) (api.ActionRequest, error) {
	dev, _ := GuestDevice(v.Attachment.Device)
	ebs, err := c.ebs(v.Zone)
	if err != nil || ebs == nil {
		return api.ActionRequest{}, fmt.Errorf("zone %s has no volume service: %w", v.Zone, err)
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	info, err := ebs.GetVolume(cctx, v.ID)
	cancel()
	if err != nil {
		return api.ActionRequest{}, err
	}
	return api.ActionRequest{Volume: &api.VolumeAttachment{VolumeID: v.ID, Device: dev, EBS: ebs.BaseURL,
		Shelf: info.Shelf, Slot: info.Slot, Force: v.Attachment.Force}}, nil
}

func (c *Controller) attach(ctx context.Context, v Volume) {
	req, err := c.nodeRequest(ctx, v)
	var cl *api.Client
	if err == nil {
		cl, err = c.cluster(v.Zone)
	}
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, c.cfg.AttachTimeout)
		_, err = cl.Act(cctx, v.Attachment.Instance, api.VerbAttachVolume, req)
		cancel()
	}
	var ce *api.CallError
	switch {
	case err == nil:
		c.updateAttachment(v.ID, Attaching, func(v *Volume) { v.Attachment.State = Attached })
		c.log.Info("volume attached", "volume_id", v.ID, "instance_id", v.Attachment.Instance, "device", v.Attachment.Device)
		return
	case errors.As(err, &ce) && ce.Status < 500, c.now().Sub(v.Attachment.Time) > c.cfg.CreateTimeout:
		// Refused, or never done: the volume is free again (the node let
		// go of whatever it had done).
		c.log.Warn("volume attach failed", "volume_id", v.ID, "instance_id", v.Attachment.Instance, "err", err)
		c.updateAttachment(v.ID, Attaching, func(v *Volume) { v.Attachment.State, v.Attachment.Force = Detaching, true })
	default:
		c.log.Warn("volume attach: retrying", "volume_id", v.ID, "instance_id", v.Attachment.Instance, "err", err)
	}
}

func (c *Controller) detach(ctx context.Context, v Volume) {
	req, err := c.nodeRequest(ctx, v)
	if err == nil && !v.Attachment.Force {
		var cl *api.Client
		if cl, err = c.cluster(v.Zone); err == nil {
			cctx, cancel := context.WithTimeout(ctx, c.cfg.AttachTimeout)
			_, err = cl.Act(cctx, v.Attachment.Instance, api.VerbDetachVolume, req)
			cancel()
		}
	}
	if err == nil && v.Attachment.Force {
		err = c.revokeAll(ctx, v, req)
	}
	if err != nil {
		c.log.Warn("volume detach: retrying", "volume_id", v.ID, "instance_id", v.Attachment.Instance, "err", err)
		return
	}
	c.updateAttachment(v.ID, Detaching, func(v *Volume) { v.State, v.Attachment = Available, nil })
	c.log.Info("volume detached", "volume_id", v.ID)
}

// revokeAll has ebs stop letting every node use v (a forced detach);
// the instance's node is asked first (req, from nodeRequest), and a
// refusal does not stop it.
func (c *Controller) revokeAll(ctx context.Context, v Volume, req api.ActionRequest) error {
	if cl, err := c.cluster(v.Zone); err == nil {
		cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
		_, _ = cl.Act(cctx, v.Attachment.Instance, api.VerbDetachVolume, req)
		cancel()
	}
	ebs, err := c.ebs(v.Zone)
	if err != nil || ebs == nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	info, err := ebs.GetVolume(cctx, v.ID)
	if err != nil {
		return err
	}
	for _, mac := range info.Allow {
		if _, err := ebs.DisallowVolume(cctx, v.ID, mac); err != nil {
			return err
		}
	}
	return nil
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
		_, err = cl.CreateVolume(cctx, v.ID, api.VolumeRequest{SizeGiB: v.SizeGiB, SnapshotID: v.SnapshotID})
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
