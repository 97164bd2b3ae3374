package images

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/ident"
	"github.com/koala-cloud/koala/pkg/store"
)

// Errors callers test for.
var (
	ErrNotFound = errors.New("no such image")
	ErrState    = errors.New("image in the wrong state")
)

// Image types, as EC2 names them.
const (
	Machine = "machine"
	Kernel  = "kernel"
	Ramdisk = "ramdisk"
)

// Image states.
const (
	Pending      = "pending"
	Available    = "available"
	Failed       = "failed"
	Deregistered = "deregistered"
)

// Mapping is a block device mapping of an image.
type Mapping struct {
	DeviceName  string `json:"device"`
	VirtualName string `json:"virtual,omitempty"`
}

// Image is a registered image.
type Image struct {
	ID             string    `json:"id"`
	Owner          string    `json:"owner"` // account ID
	Name           string    `json:"name"`
	Description    string    `json:"description,omitempty"`
	Type           string    `json:"type"`
	Architecture   string    `json:"arch"`
	Location       string    `json:"location"` // bucket/key of the manifest
	ManifestDigest string    `json:"manifest_digest"`
	KernelID       string    `json:"kernel,omitempty"`
	RamdiskID      string    `json:"ramdisk,omitempty"`
	RootDevice     string    `json:"root_device,omitempty"`
	Mappings       []Mapping `json:"mappings,omitempty"`
	State          string    `json:"state"`
	ReasonCode     string    `json:"reason_code,omitempty"`
	ReasonMessage  string    `json:"reason_message,omitempty"`
	Public         bool      `json:"public,omitempty"`
	LaunchAccounts []string  `json:"launch_accounts,omitempty"`
	Size           int64     `json:"size,omitempty"`
	// SHA256 is the decrypted image's digest, which nodes check.
	SHA256  string    `json:"sha256,omitempty"`
	Created time.Time `json:"created"`
}

// prefixes are the ID prefixes of each image type.
var prefixes = map[string]string{Machine: "ami", Kernel: "aki", Ramdisk: "ari"}

// NewID returns a new ID for an image of type typ.
func NewID(typ string) string { return ident.Resource(prefixes[typ]) }

// CanLaunch reports whether account may see and launch img.
func (img Image) CanLaunch(account string) bool {
	if img.Owner == account || img.Public {
		return true
	}
	for _, a := range img.LaunchAccounts {
		if a == account {
			return true
		}
	}
	return false
}

// Put stores img.
func Put(tx *store.Tx, img Image) error { return tx.Put(state.Images, []byte(img.ID), img) }

// Get returns an image, deregistered ones included.
func Get(tx *store.Tx, id string) (Image, error) {
	var img Image
	err := tx.Get(state.Images, []byte(id), &img)
	if errors.Is(err, store.ErrNotFound) {
		return img, fmt.Errorf("%w: The image id '[%s]' does not exist", ErrNotFound, id)
	}
	return img, err
}

// Visible returns an image account may see, else ErrNotFound.
func Visible(tx *store.Tx, account, id string) (Image, error) {
	img, err := Get(tx, id)
	if err != nil {
		return img, err
	}
	if img.State == Deregistered || !img.CanLaunch(account) {
		return Image{}, fmt.Errorf("%w: The image id '[%s]' does not exist", ErrNotFound, id)
	}
	return img, nil
}

// All returns every image that is not deregistered, by ID.
func All(tx *store.Tx) ([]Image, error) {
	b, err := tx.Bucket(state.Images)
	if err != nil {
		return nil, err
	}
	var out []Image
	err = b.ForEach(func(_, v []byte) error {
		var img Image
		if err := store.Decode(v, &img); err != nil {
			return err
		}
		if img.State != Deregistered {
			out = append(out, img)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// SetState records the outcome of caching an image.
func SetState(tx *store.Tx, id, st, code, msg string, size int64, sha string) error {
	img, err := Get(tx, id)
	if err != nil {
		return err
	}
	if img.State == Deregistered {
		return nil
	}
	img.State, img.ReasonCode, img.ReasonMessage = st, code, msg
	if size > 0 {
		img.Size = size
	}
	if sha != "" {
		img.SHA256 = sha
	}
	return Put(tx, img)
}

// Defaults are the kernel and ramdisk a machine image gets when neither
// it nor its manifest names one (an admin setting).
type Defaults struct {
	Kernel  string `json:"kernel,omitempty"`
	Ramdisk string `json:"ramdisk,omitempty"`
}

var defaultsKey = []byte("image_defaults")

// GetDefaults returns the cloud's default kernel and ramdisk.
func GetDefaults(tx *store.Tx) (Defaults, error) {
	var d Defaults
	err := tx.Get(state.Cloud, defaultsKey, &d)
	if errors.Is(err, store.ErrNotFound) {
		return Defaults{}, nil
	}
	return d, err
}

// SetDefaults records the cloud's default kernel and ramdisk; each must
// be an available image of its type.
func SetDefaults(tx *store.Tx, d Defaults) error {
	for id, typ := range map[string]string{d.Kernel: Kernel, d.Ramdisk: Ramdisk} {
		if id == "" {
			continue
		}
		img, err := Get(tx, id)
		if err != nil {
			return err
		}
		if img.Type != typ || img.State != Available {
			return fmt.Errorf("%w: %s is a %s image in state %s, not an available %s", ErrState, id, img.Type, img.State, typ)
		}
	}
	return tx.Put(state.Cloud, defaultsKey, d)
}
