package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/koala-cloud/koala/pkg/sigv4"
)

// ErrNotFound is what Client returns, wrapped, for a key or account the
// cloud does not know.
var ErrNotFound = errors.New("not found")

// Client calls cloudctl's internal API, signing each call with a
// component key (SigV4, service InternalService).
type Client struct {
	BaseURL     string // http://127.0.0.1:8773
	AccessKeyID string
	Secret      string
	Region      string
	HTTP        *http.Client
}

// AccessKey resolves an access key.
func (c *Client) AccessKey(ctx context.Context, id string) (AccessKey, error) {
	var out AccessKey
	err := c.get(ctx, PathAccessKeys+url.PathEscape(id), &out)
	return out, err
}

// Account finds an account by one attribute: "canonical_id", "email" or
// "id".
func (c *Client) Account(ctx context.Context, by, value string) (Account, error) {
	var out Account
	err := c.get(ctx, PathAccounts+"?"+url.Values{by: {value}}.Encode(), &out)
	return out, err
}

// BundleKeys asks cloudctl to decrypt a bundle's key and IV.
func (c *Client) BundleKeys(ctx context.Context, in BundleKeysRequest) (BundleKeysResponse, error) {
	var out BundleKeysResponse
	err := c.do(ctx, http.MethodPost, PathBundleKeys, in, &out)
	return out, err
}

// Manifest asks walrus for a manifest on behalf of an account.
func (c *Client) Manifest(ctx context.Context, in ManifestRequest) (ManifestResponse, error) {
	var out ManifestResponse
	err := c.do(ctx, http.MethodPost, PathManifests, in, &out)
	return out, err
}

// CacheImage asks walrus to check and cache a registered image; it returns
// once the image is cached, or why it cannot be.
func (c *Client) CacheImage(ctx context.Context, in CacheRequest) (CacheResponse, error) {
	var out CacheResponse
	err := c.do(ctx, http.MethodPost, PathImageCache, in, &out)
	return out, err
}

func (c *Client) get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

// do makes one signed call; a non-200 answer becomes an *Error-carrying
// error (ErrNotFound for 404).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	region := c.Region
	if region == "" {
		region = "internal"
	}
	if err := sigv4.Sign(req, c.AccessKeyID, c.Secret, region, InternalService, "", time.Now()); err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("internal call %s: %w", path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("internal call %s: %w", path, err)
	}
	if res.StatusCode != http.StatusOK {
		var e Error
		_ = json.Unmarshal(data, &e)
		if res.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%w: %s: %s", ErrNotFound, e.Code, e.Message)
		}
		return &CallError{Status: res.StatusCode, Code: e.Code, Message: e.Message}
	}
	return json.Unmarshal(data, out)
}

// CallError is a failed internal call: the AWS code and message the other
// daemon answered with, to rebuild the typed error on this side.
type CallError struct {
	Status        int
	Code, Message string
}

func (e *CallError) Error() string {
	return fmt.Sprintf("internal call failed: %d %s: %s", e.Status, e.Code, e.Message)
}
