package api

import (
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

func (c *Client) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.BaseURL, "/")+path, nil)
	if err != nil {
		return err
	}
	region := c.Region
	if region == "" {
		region = "internal"
	}
	if err := sigv4.Sign(req, c.AccessKeyID, c.Secret, region, InternalService, sigv4.EmptySHA256, time.Now()); err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cloudctl %s: %w", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("cloudctl %s: %w", path, err)
	}
	if res.StatusCode != http.StatusOK {
		var e Error
		_ = json.Unmarshal(body, &e)
		if res.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%w: %s: %s", ErrNotFound, e.Code, e.Message)
		}
		return fmt.Errorf("cloudctl %s: %d %s: %s", path, res.StatusCode, e.Code, e.Message)
	}
	return json.Unmarshal(body, out)
}
