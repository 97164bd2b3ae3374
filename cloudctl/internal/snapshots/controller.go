package snapshots

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/cloudctl/internal/reconcile"
	"github.com/koala-cloud/koala/cloudctl/internal/volumes"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// Config tunes the controller.
type Config struct {
	// Credentials sign cloudctl's calls to ebs.
	Credentials api.Credentials
	// CallTimeout bounds one call (10s when 0).
	CallTimeout time.Duration
	// Poll is the reconcile period when no snapshot is pending (5s when
	// 0), and PendingPoll the period while one is (1s, or Poll if
	// shorter, when 0), so that a waiting client sees a snapshot
	// complete promptly.
	Poll, PendingPoll time.Duration
	// LostTimeout is how long a pending snapshot may go without ebs
	// reporting on it (unreachable, or not knowing the job) before it
	// ends in error (10m when 0).
	LostTimeout time.Duration
}

func (c *Config) defaults() {
	if c.CallTimeout == 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.Poll == 0 {
		c.Poll = 5 * time.Second
	}
	if c.PendingPoll == 0 {
		c.PendingPoll = min(time.Second, c.Poll)
	}
	if c.LostTimeout == 0 {
		c.LostTimeout = 10 * time.Minute
	}
}

// Manifests is walrus's store of snapshot manifests: deleting one that
// is not there is not an error.
type Manifests interface {
	DeleteSnapshotManifest(ctx context.Context, id string) error
}

// Controller has the zones' ebs daemons take the pending snapshots and
// walrus drop the deleted ones.
type Controller struct {
	db     *store.DB
	cfg    Config
	walrus Manifests
	log    *slog.Logger
	loop   *reconcile.Loop
	now    func() time.Time
}

// NewController returns a controller over cloudctl's database that
// deletes snapshots from walrus.
func NewController(db *store.DB, cfg Config, walrus Manifests, log *slog.Logger) *Controller {
	cfg.defaults()
	return &Controller{db: db, cfg: cfg, walrus: walrus, log: log, loop: reconcile.New(), now: time.Now}
}

// Kick asks for a reconcile soon; it never blocks.
func (c *Controller) Kick() { c.loop.Kick() }

// Run reconciles after each Kick, every PendingPoll while a snapshot is
// pending and every Poll otherwise, until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	c.loop.Run(ctx, func(ctx context.Context) time.Duration {
		if c.reconcile(ctx) {
			return c.cfg.PendingPoll
		}
		return c.cfg.Poll
	})
}

// Reconcile advances every pending snapshot and deletes the deleting
// ones.
func (c *Controller) Reconcile(ctx context.Context) { c.reconcile(ctx) }

// reconcile is Reconcile; it reports whether a snapshot is still pending.
func (c *Controller) reconcile(ctx context.Context) bool {
	var all []Snapshot
	if err := c.db.View(func(tx *store.Tx) error { var err error; all, err = All(tx); return err }); err != nil {
		c.log.Error("snapshots: reading", "err", err)
		return false
	}
	pending := false
	for _, s := range all {
		if ctx.Err() != nil {
			return pending
		}
		switch s.State {
		case Pending:
			pending = c.advance(ctx, s) || pending
		case Deleting:
			c.remove(ctx, s)
		}
	}
	return pending
}

// update changes a stored snapshot in one transaction when it is still in
// state from; fn edits it.
func (c *Controller) update(id, from string, fn func(s *Snapshot)) {
	err := c.db.Commit(func(tx *store.Tx) error {
		s, err := Get(tx, id)
		if err != nil || s.State != from {
			return nil
		}
		fn(&s)
		return Put(tx, s)
	})
	if err != nil {
		c.log.Error("snapshots: storing", "snapshot_id", id, "err", err)
	}
}

func (c *Controller) fail(s Snapshot, reason string) {
	c.log.Warn("snapshot failed", "snapshot_id", s.ID, "volume_id", s.VolumeID, "reason", reason)
	c.update(s.ID, Pending, func(s *Snapshot) { s.State, s.StateMessage = Error, reason })
}

// advance starts a pending snapshot's job on ebs (a repeat is harmless:
// ebs knows jobs by snapshot ID), or follows it once started, and records
// what ebs reports; it tells whether the snapshot is still pending.
func (c *Controller) advance(ctx context.Context, s Snapshot) bool {
	cl, err := clusters.EBS(c.db, s.Zone, c.cfg.Credentials, c.cfg.CallTimeout)
	switch {
	case errors.Is(err, clusters.ErrNotFound), err == nil && cl == nil:
		c.fail(s, "Availability zone "+s.Zone+" has no volume service.")
		return false
	case err != nil:
		c.log.Error("snapshots: reading the zone", "snapshot_id", s.ID, "zone", s.Zone, "err", err)
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	var job api.SnapshotJob
	started := !s.Submitted.IsZero()
	if started {
		job, err = cl.Snapshot(cctx, s.ID)
	} else {
		job, err = cl.CreateSnapshot(cctx, s.ID, api.SnapshotRequest{VolumeID: s.VolumeID})
	}
	cancel()
	now := c.now().UTC()
	last := s.Seen
	if last.IsZero() {
		last = s.StartTime
	}
	lost := now.Sub(last) > c.cfg.LostTimeout
	var ce *api.CallError
	switch {
	case err == nil:
		c.update(s.ID, Pending, func(s *Snapshot) {
			if s.Submitted.IsZero() {
				s.Submitted = now
			}
			s.Seen = now
			apply(s, job)
		})
		if job.State != Pending {
			c.log.Info("snapshot "+job.State, "snapshot_id", s.ID, "volume_id", s.VolumeID, "err", job.Error)
		}
		return job.State == Pending
	case !started && api.Code(err) == "SnapshotCreationPerVolumeRateExceeded" && !lost:
		// ebs is still taking another snapshot of the volume.
		c.log.Info("snapshot waits for another of its volume", "snapshot_id", s.ID, "volume_id", s.VolumeID)
	case !started && errors.As(err, &ce) && ce.Status < 500:
		c.fail(s, ce.Code+": "+ce.Message)
		return false
	case started && errors.Is(err, api.ErrNotFound) && lost:
		c.fail(s, "The volume service lost the snapshot.")
		return false
	case lost:
		c.fail(s, "The volume service of "+s.Zone+" could not be reached.")
		return false
	default:
		c.log.Warn("snapshot: ebs did not answer; retrying", "snapshot_id", s.ID, "zone", s.Zone, "err", err)
	}
	return true
}

// apply copies what ebs reports of a job into its record.
func apply(s *Snapshot, job api.SnapshotJob) {
	switch job.State {
	case Completed:
		s.State, s.Progress = Completed, 100
	case Error:
		s.State, s.StateMessage = Error, job.Error
		if s.StateMessage == "" {
			s.StateMessage = "The snapshot failed."
		}
	default:
		s.Progress = min(max(job.Progress, 0), 99)
	}
}

// remove drops a deleting snapshot from walrus and then its record; it
// waits while a volume is still being filled from the snapshot.
func (c *Controller) remove(ctx context.Context, s Snapshot) {
	if why := c.held(ctx, s.ID); why != "" {
		c.log.Info("snapshot deletion waits", "snapshot_id", s.ID, "reason", why)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	err := c.walrus.DeleteSnapshotManifest(cctx, s.ID)
	cancel()
	if err != nil {
		c.log.Warn("snapshot delete: walrus did not; retrying", "snapshot_id", s.ID, "err", err)
		return
	}
	c.forget(ctx, s)
	err = c.db.Commit(func(tx *store.Tx) error {
		cur, err := Get(tx, s.ID)
		if err != nil || cur.State != Deleting {
			return nil
		}
		return Delete(tx, s.ID)
	})
	if err != nil {
		c.log.Error("snapshots: storing", "snapshot_id", s.ID, "err", err)
		return
	}
	c.log.Info("snapshot deleted", "snapshot_id", s.ID)
}

// forget has the snapshot's ebs drop its job's record; an ebs that does
// not answer keeps a few bytes, nothing more.
func (c *Controller) forget(ctx context.Context, s Snapshot) {
	cl, err := clusters.EBS(c.db, s.Zone, c.cfg.Credentials, c.cfg.CallTimeout)
	if err != nil || cl == nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	if err := cl.ForgetSnapshot(cctx, s.ID); err != nil && !errors.Is(err, api.ErrNotFound) {
		c.log.Warn("snapshot delete: ebs keeps its job's record", "snapshot_id", s.ID, "err", err)
	}
}

// held says why a snapshot's chunks must stay in walrus: a volume made
// from it that ebs has not yet filled (or may still create); "" when
// none.
func (c *Controller) held(ctx context.Context, id string) string {
	var vols []volumes.Volume
	if err := c.db.View(func(tx *store.Tx) error { var err error; vols, err = volumes.All(tx, ""); return err }); err != nil {
		return err.Error()
	}
	for _, v := range vols {
		if v.SnapshotID != id || v.State == volumes.Error {
			continue
		}
		if v.State == volumes.Creating || v.State == volumes.Deleting {
			return fmt.Sprintf("volume %s is %s", v.ID, v.State)
		}
		cl, err := clusters.EBS(c.db, v.Zone, c.cfg.Credentials, c.cfg.CallTimeout)
		switch {
		case errors.Is(err, clusters.ErrNotFound), err == nil && cl == nil:
			continue // no ebs: the volume cannot be using it
		case err != nil:
			return err.Error()
		}
		cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
		info, err := cl.GetVolume(cctx, v.ID)
		cancel()
		switch {
		case errors.Is(err, api.ErrNotFound):
		case err != nil:
			return fmt.Sprintf("volume %s: %v", v.ID, err)
		case !info.Filled:
			return fmt.Sprintf("volume %s is still being filled", v.ID)
		}
	}
	return ""
}
