package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Registration is what RegisterImage is told about an uploaded bundle.
type Registration struct {
	// Location is BUCKET/PREFIX/NAME.manifest.xml.
	Location string
	// Name is the image's name, unique among the account's images.
	Name string
	// Description, Arch, KernelID and RamdiskID are optional; the cloud
	// takes the manifest's architecture, kernel and ramdisk when they are
	// empty.
	Description, Arch, KernelID, RamdiskID string
}

// Register registers an uploaded bundle and returns the image ID.
func (c *Client) Register(ctx context.Context, r Registration) (string, error) {
	loc := strings.TrimPrefix(strings.TrimPrefix(r.Location, "s3://"), "/")
	if b, k, ok := strings.Cut(loc, "/"); !ok || b == "" || k == "" {
		return "", fmt.Errorf("image location %q is not BUCKET/[PREFIX/]NAME.manifest.xml", r.Location)
	}
	if r.Name == "" {
		return "", errors.New("no image name: pass -n NAME")
	}
	in := &ec2.RegisterImageInput{ImageLocation: aws.String(loc), Name: aws.String(r.Name)}
	if r.Description != "" {
		in.Description = aws.String(r.Description)
	}
	if r.Arch != "" {
		in.Architecture = types.ArchitectureValues(r.Arch)
	}
	if r.KernelID != "" {
		in.KernelId = aws.String(r.KernelID)
	}
	if r.RamdiskID != "" {
		in.RamdiskId = aws.String(r.RamdiskID)
	}
	out, err := c.ec2.RegisterImage(ctx, in)
	if err != nil {
		return "", wrap("register "+loc, err)
	}
	id := aws.ToString(out.ImageId)
	if id == "" {
		return "", fmt.Errorf("register %s: the cloud returned no image ID", loc)
	}
	c.logf("Registered %s as %s", loc, id)
	return id, nil
}

// ErrImageFailed reports an image that the cloud could not make
// available; the error's text has the state and its reason.
var ErrImageFailed = errors.New("image not available")

// Poll intervals of Wait: it starts often, for small images, and slows.
const (
	pollFirst = 500 * time.Millisecond
	pollMax   = 5 * time.Second
	// notFoundGrace is how long a new image may be missing from
	// DescribeImages (eventual consistency) before Wait gives up.
	notFoundGrace = 30 * time.Second
)

// Wait polls DescribeImages until the image is available. It returns an
// error wrapping ErrImageFailed with the state reason when the image
// fails, and one naming the state when timeout passes first.
func (c *Client) Wait(ctx context.Context, id string, timeout time.Duration) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := pollFirst
	last := ""
	for {
		state, reason, err := c.imageState(ctx, id)
		switch {
		case err != nil && errorCode(err) == "InvalidAMIID.NotFound" && time.Since(start) < notFoundGrace:
		case err != nil:
			if ctx.Err() != nil {
				return fmt.Errorf("image %s is still %s after %s: %w", id, orPending(last), timeout, ctx.Err())
			}
			return err
		case state == types.ImageStateAvailable:
			c.logf("Image %s is available (%s)", id, time.Since(start).Round(100*time.Millisecond))
			return nil
		case state == types.ImageStatePending || state == types.ImageStateTransient:
			if string(state) != last {
				c.logf("Image %s is %s; waiting up to %s", id, state, timeout)
			}
		default:
			if reason == "" {
				reason = "no reason given"
			}
			return fmt.Errorf("%w: %s is %s: %s", ErrImageFailed, id, state, reason)
		}
		if err == nil {
			last = string(state)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("image %s is still %s after %s; see `aws ec2 describe-images --image-ids %s`", id, orPending(last), timeout, id)
			}
			return ctx.Err()
		case <-time.After(interval):
		}
		interval = min(interval*2, pollMax)
	}
}

func orPending(state string) string {
	if state == "" {
		return "pending"
	}
	return state
}

// imageState returns an image's state and state reason.
func (c *Client) imageState(ctx context.Context, id string) (types.ImageState, string, error) {
	out, err := c.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil {
		return "", "", wrap("describe "+id, err)
	}
	for _, img := range out.Images {
		if aws.ToString(img.ImageId) != id {
			continue
		}
		var reason string
		if r := img.StateReason; r != nil {
			reason = aws.ToString(r.Message)
			if code := aws.ToString(r.Code); code != "" {
				reason = code + ": " + reason
			}
		}
		return img.State, reason, nil
	}
	return "", "", &APIError{Op: "describe " + id, Code: "InvalidAMIID.NotFound", Message: "DescribeImages did not list it"}
}
