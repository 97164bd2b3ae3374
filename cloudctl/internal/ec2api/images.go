package ec2api

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/images"
	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/bundle"
	"github.com/koala-cloud/koala/pkg/store"
)

// Bundles is how the EC2 API reaches walrus for image bundles.
type Bundles interface {
	Manifest(ctx context.Context, in api.ManifestRequest) (api.ManifestResponse, error)
	CacheImage(ctx context.Context, in api.CacheRequest) (api.CacheResponse, error)
}

var imageNameRE = regexp.MustCompile(`^[a-zA-Z0-9().\-/_ \[\]@']{3,128}$`)

type registerImageResult struct {
	ImageID string `xml:"imageId"`
}

func (a *API) registerImage(rq *request) (any, error) {
	p := rq.p
	location, err := p.Required("ImageLocation")
	if err != nil {
		if p.Has("BlockDeviceMapping.1.Ebs.SnapshotId") || p.Has("RootDeviceName") {
			return nil, awserr.New("UnsupportedOperation", "Registering images from snapshots is not supported yet; register a bundle with ImageLocation")
		}
		return nil, err
	}
	name, err := p.Required("Name")
	if err != nil {
		return nil, err
	}
	desc, arch := p.String("Description"), p.String("Architecture")
	kernel, ramdisk, root := p.String("KernelId"), p.String("RamdiskId"), p.String("RootDeviceName")
	virt := p.String("VirtualizationType")
	bdms, err := p.Structs("BlockDeviceMapping")
	if err != nil {
		return nil, err
	}
	var mappings []images.Mapping
	for _, b := range bdms {
		dev, err := b.Required("DeviceName")
		if err != nil {
			return nil, err
		}
		if b.Has("Ebs.SnapshotId") || b.Has("Ebs.VolumeSize") {
			return nil, awserr.New("UnsupportedOperation", "EBS block device mappings are not supported for bundled images")
		}
		mappings = append(mappings, images.Mapping{DeviceName: dev, VirtualName: b.String("VirtualName")})
		b.Skip("NoDevice")
	}
	ts, err := tagSpecs(p, "image")
	if err != nil {
		return nil, err
	}
	switch {
	case !imageNameRE.MatchString(name):
		return nil, awserr.New("InvalidAMIName.Malformed", "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' and '_'")
	case arch != "" && arch != "i386" && arch != "x86_64" && arch != "arm64":
		return nil, awserr.Newf("InvalidParameterValue", "Value (%s) for parameter architecture is invalid. Valid values: i386, x86_64, arm64", arch)
	case virt != "" && virt != "paravirtual" && virt != "hvm":
		return nil, awserr.Newf("InvalidParameterValue", "Value (%s) for parameter virtualizationType is invalid.", virt)
	}
	location = strings.TrimPrefix(location, "/")
	if i := strings.IndexByte(location, '/'); i <= 0 || i == len(location)-1 {
		return nil, awserr.Newf("InvalidParameterValue", "Invalid value '%s' for ImageLocation: expecting bucket/manifest-key", location)
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	if a.bundles == nil {
		return nil, awserr.New("Unavailable", "The image store is not configured.")
	}
	// Read, verify and decrypt the manifest now, so that every problem is
	// an answer to this call rather than a failed image later.
	got, err := a.bundles.Manifest(rq.ctx, api.ManifestRequest{Location: location, CanonicalID: rq.account.CanonicalID})
	var ce *api.CallError
	switch {
	case errors.Is(err, api.ErrNotFound):
		return nil, awserr.Newf("InvalidManifest", "The manifest %s does not exist.", location)
	case errors.As(err, &ce) && ce.Code == "AccessDenied":
		return nil, awserr.Newf("InvalidManifest", "You do not have access to the manifest %s.", location)
	case err != nil:
		return nil, err
	}
	m, err := bundle.ParseManifest(got.Manifest)
	if err != nil {
		return nil, awserr.Newf("InvalidManifest", "The manifest %s cannot be parsed: %v", location, err)
	}
	if err := a.verifyManifest(rq, m); err != nil {
		return nil, err
	}
	if _, _, err := m.Keys(a.decrypt); err != nil {
		return nil, awserr.Newf("InvalidManifest", "The bundle %s was not encrypted for this cloud's certificate.", location)
	}
	typ := m.Type
	if typ == "" {
		typ = images.Machine
	}
	if arch == "" {
		arch = m.Arch
	}
	if kernel == "" {
		kernel = m.KernelID
	}
	if ramdisk == "" {
		ramdisk = m.RamdiskID
	}
	if len(mappings) == 0 {
		for _, mp := range m.BlockDeviceMappings {
			mappings = append(mappings, images.Mapping{DeviceName: "/dev/" + strings.TrimPrefix(mp.Device, "/dev/"), VirtualName: mp.Virtual})
		}
	}
	if root == "" {
		root = "/dev/sda1"
	}
	img := images.Image{
		ID: images.NewID(typ), Owner: rq.account.ID, Name: name, Description: desc, Type: typ, Architecture: arch,
		Location: location, ManifestDigest: got.Digest, RootDevice: root, Mappings: mappings,
		State: images.Pending, Created: a.cfg.Now().UTC(),
	}
	err = a.update(func(tx *store.Tx) error {
		if typ == images.Machine {
			defaults, err := images.GetDefaults(tx)
			if err != nil {
				return err
			}
			if img.KernelID, err = a.launchable(tx, rq.account.ID, kernel, images.Kernel, defaults.Kernel); err != nil {
				return err
			}
			if img.RamdiskID, err = a.launchable(tx, rq.account.ID, ramdisk, images.Ramdisk, defaults.Ramdisk); err != nil {
				return err
			}
		}
		all, err := images.All(tx)
		if err != nil {
			return err
		}
		for _, other := range all {
			if other.Owner == rq.account.ID && other.Name == name {
				return awserr.Newf("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI %s", name, other.ID)
			}
		}
		if err := images.Put(tx, img); err != nil {
			return err
		}
		return tags.Add(tx, rq.account.ID, img.ID, ts)
	})
	if err != nil {
		return nil, err
	}
	a.cacheLater(img.ID)
	return registerImageResult{img.ID}, nil
}

func parseCert(pemText string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// verifyManifest checks the manifest's signature against the account's
// signing certificates.
func (a *API) verifyManifest(rq *request, m *bundle.Manifest) error {
	certs, err := a.accounts.Certs(rq.ctx, rq.account.ID)
	if err != nil {
		return err
	}
	for _, c := range certs {
		cert, err := parseCert(c.PEM)
		if err == nil && m.Verify(cert) == nil {
			return nil
		}
	}
	return awserr.Newf("InvalidManifest", "The manifest's signature does not verify with any signing certificate of account %s.", rq.account.ID)
}

// launchable resolves a kernel or ramdisk for a machine image: the one
// named, else the cloud's default; it must exist, be of type typ and be
// launchable by account.
func (a *API) launchable(tx *store.Tx, account, id, typ, def string) (string, error) {
	if id == "" {
		id = def
	}
	if id == "" {
		return "", nil
	}
	img, err := images.Visible(tx, account, id)
	if err != nil || img.Type != typ {
		return "", awserr.Newf("InvalidAMIID.NotFound", "The %s ID '%s' does not exist", typ, id)
	}
	return id, nil
}

// cacheLater has walrus check and cache an image in the background.
func (a *API) cacheLater(id string) {
	select {
	case a.kick <- id:
	default:
		// The worker is behind; its periodic sweep picks the image up.
	}
}

// RunCache checks and caches pending images until ctx ends: each new
// image at once, and every pending one on each sweep, so that an image
// left pending by a restart or an unreachable walrus is retried.
func (a *API) RunCache(ctx context.Context, sweep time.Duration) {
	t := time.NewTicker(sweep)
	defer t.Stop()
	a.sweep(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-a.kick:
			a.cacheOne(ctx, id)
		case <-t.C:
			a.sweep(ctx)
		}
	}
}

func (a *API) sweep(ctx context.Context) {
	var pending []string
	_ = a.view(func(tx *store.Tx) error {
		all, err := images.All(tx)
		for _, img := range all {
			if img.State == images.Pending {
				pending = append(pending, img.ID)
			}
		}
		return err
	})
	for _, id := range pending {
		if ctx.Err() != nil {
			return
		}
		a.cacheOne(ctx, id)
	}
}

// cacheOne asks walrus to cache one image and records the outcome; a
// walrus it cannot reach leaves the image pending for the next sweep.
func (a *API) cacheOne(ctx context.Context, id string) {
	var img images.Image
	if err := a.view(func(tx *store.Tx) error {
		var err error
		img, err = images.Get(tx, id)
		return err
	}); err != nil || img.State != images.Pending || a.bundles == nil {
		return
	}
	res, err := a.bundles.CacheImage(ctx, api.CacheRequest{Location: img.Location, Digest: img.ManifestDigest})
	var ce *api.CallError
	state, code, msg := images.Available, "", ""
	switch {
	case err == nil:
	case errors.As(err, &ce) && ce.Status < 500:
		state, code, msg = images.Failed, "Client.InvalidManifest", ce.Message
	case errors.Is(err, api.ErrNotFound):
		state, code, msg = images.Failed, "Client.InvalidManifest", "The manifest no longer exists."
	default:
		a.log.Warn("cache image", "image_id", id, "err", err)
		return
	}
	if err := a.update(func(tx *store.Tx) error {
		return images.SetState(tx, id, state, code, msg, res.Size, res.SHA256)
	}); err != nil {
		a.log.Error("record image state", "image_id", id, "err", err)
		return
	}
	a.log.Info("image checked", "image_id", id, "state", state, "reason", msg)
}

type cloudCertificateResult struct {
	Certificate string `xml:"certificate"`
}

// describeCloudCertificate returns the cloud's certificate, which image
// bundles encrypt their key for (an extension of this cloud, as
// Eucalyptus had one), so users need not copy it around.
func (a *API) describeCloudCertificate(rq *request) (any, error) {
	if err := rq.ready(); err != nil {
		return nil, err
	}
	return cloudCertificateResult{string(a.certPEM)}, nil
}
