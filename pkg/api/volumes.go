package api

import (
	"context"
	"net/http"
	"net/url"
)

// PathVolumes (ebs) is the volume collection: PUT {id} creates
// (VolumeRequest), GET {id} and GET list, DELETE {id} deletes;
// PUT/DELETE {id}/attachments/{mac} lets a node's MAC use the volume or
// stops it.
const PathVolumes = "/internal/v1/volumes/"

// VolumeRequest creates a volume.
type VolumeRequest struct {
	SizeGiB int `json:"size_gib"`
	// SnapshotID, when set, is the snapshot the volume starts as; its
	// chunks are read from walrus as the volume is used and in the
	// background.
	SnapshotID string `json:"snapshot_id,omitempty"`
}

// Volume is a volume as ebs serves it.
type Volume struct {
	ID      string `json:"id"`
	SizeGiB int    `json:"size_gib"`
	// Shelf and Slot are its AoE address, stable for its life.
	Shelf uint16 `json:"shelf"`
	Slot  uint8  `json:"slot"`
	// Target is the MAC of the interface ebs serves AoE on.
	Target string `json:"target"`
	// Allow are the MACs that may use it (its attachments).
	Allow []string `json:"allow"`
	// SnapshotID is the snapshot it was created from; Filled is false
	// while chunks of it are still to be read from walrus.
	SnapshotID string `json:"snapshot_id,omitempty"`
	Filled     bool   `json:"filled"`
}

// Volumes lists volumes.
type Volumes struct {
	Volumes []Volume `json:"volumes"`
}

// CreateVolume creates (or finds, with the same size) a volume on ebs.
func (c *Client) CreateVolume(ctx context.Context, id string, in VolumeRequest) (Volume, error) {
	var out Volume
	err := c.do(ctx, http.MethodPut, PathVolumes+url.PathEscape(id), in, &out)
	return out, err
}

// GetVolume returns one volume.
func (c *Client) GetVolume(ctx context.Context, id string) (Volume, error) {
	var out Volume
	err := c.get(ctx, PathVolumes+url.PathEscape(id), &out)
	return out, err
}

// ListVolumes returns every volume.
func (c *Client) ListVolumes(ctx context.Context) ([]Volume, error) {
	var out Volumes
	err := c.get(ctx, PathVolumes, &out)
	return out.Volumes, err
}

// DeleteVolume deletes a volume; one still attached is VolumeInUse.
func (c *Client) DeleteVolume(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, PathVolumes+url.PathEscape(id), nil, &struct{}{})
}

// AllowVolume lets mac use a volume.
func (c *Client) AllowVolume(ctx context.Context, id, mac string) (Volume, error) {
	var out Volume
	err := c.do(ctx, http.MethodPut, PathVolumes+url.PathEscape(id)+"/attachments/"+url.PathEscape(mac), nil, &out)
	return out, err
}

// DisallowVolume stops mac from using a volume.
func (c *Client) DisallowVolume(ctx context.Context, id, mac string) (Volume, error) {
	var out Volume
	err := c.do(ctx, http.MethodDelete, PathVolumes+url.PathEscape(id)+"/attachments/"+url.PathEscape(mac), nil, &out)
	return out, err
}
