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
	"os"
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

// RunInstances asks a cluster to run instances.
func (c *Client) RunInstances(ctx context.Context, in RunRequest) (RunResponse, error) {
	var out RunResponse
	err := c.do(ctx, http.MethodPost, PathInstances, in, &out)
	return out, err
}

// Launch asks a node to run one instance the cluster placed on it.
func (c *Client) Launch(ctx context.Context, spec InstanceSpec) (InstanceStatus, error) {
	var out InstanceStatus
	err := c.do(ctx, http.MethodPut, PathInstances+"/"+url.PathEscape(spec.ID), spec, &out)
	return out, err
}

// Act runs an instance action (VerbTerminate, ...) on a cluster or a node.
func (c *Client) Act(ctx context.Context, id, verb string, in ActionRequest) (InstanceStatus, error) {
	var out InstanceStatus
	err := c.do(ctx, http.MethodPost, PathInstances+"/"+url.PathEscape(id)+"/"+verb, in, &out)
	return out, err
}

// Instances lists what a cluster knows of its instances.
func (c *Client) Instances(ctx context.Context) ([]InstanceStatus, error) {
	var out []InstanceStatus
	err := c.get(ctx, PathInstances, &out)
	return out, err
}

// Node asks a node for its status.
func (c *Client) Node(ctx context.Context) (NodeStatus, error) {
	var out NodeStatus
	err := c.get(ctx, PathNode, &out)
	return out, err
}

// Console returns the tail of an instance's console output.
func (c *Client) Console(ctx context.Context, id string) (ConsoleOutput, error) {
	var out ConsoleOutput
	err := c.get(ctx, PathInstances+"/"+url.PathEscape(id)+"/console", &out)
	return out, err
}

// Resources asks a cluster how many instances of each type fit.
func (c *Client) Resources(ctx context.Context, in ResourcesRequest) (ClusterResources, error) {
	var out ClusterResources
	err := c.do(ctx, http.MethodPost, PathResources, in, &out)
	return out, err
}

// PutGroups hands a cluster the rules of every security group its
// instances are in.
func (c *Client) PutGroups(ctx context.Context, in GroupsRequest) error {
	return c.do(ctx, http.MethodPut, PathGroups, in, &struct{}{})
}

// PutAddresses hands a cluster its public addresses and the instances
// they reach.
func (c *Client) PutAddresses(ctx context.Context, in AddressesRequest) error {
	return c.do(ctx, http.MethodPut, PathAddresses, in, &struct{}{})
}

// PushNodeStatus reports a node's status to its cluster.
func (c *Client) PushNodeStatus(ctx context.Context, st NodeStatus) error {
	return c.do(ctx, http.MethodPost, PathNodes+url.PathEscape(st.Name)+"/status", st, &struct{}{})
}

// PushEvents reports instance changes to cloudctl.
func (c *Client) PushEvents(ctx context.Context, zone string, st []InstanceStatus) error {
	return c.do(ctx, http.MethodPost, PathInstanceEvents+"?"+url.Values{"zone": {zone}}.Encode(), st, &struct{}{})
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
	if err := sigv4.Sign(req, c.AccessKeyID, c.Secret, c.region(), InternalService, "", time.Now()); err != nil {
		return err
	}
	res, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("internal call %s: %w", path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("internal call %s: %w", path, err)
	}
	if res.StatusCode != http.StatusOK {
		var e Error
		_ = json.Unmarshal(data, &e)
		return &CallError{Status: res.StatusCode, Code: e.Code, Message: e.Message}
	}
	return json.Unmarshal(data, out)
}

// maxResponse bounds an internal answer: a cluster's list of 100,000
// instances fits.
const maxResponse = 256 << 20

// CallError is a failed internal call: the AWS code and message the other
// daemon answered with, to rebuild the typed error on this side.
type CallError struct {
	Status        int
	Code, Message string
}

// Is makes a 404 answer ErrNotFound.
func (e *CallError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// Code returns the AWS code of a failed internal call, "" for any other
// error.
func Code(err error) string {
	var ce *CallError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return ""
}

func (e *CallError) Error() string {
	return fmt.Sprintf("internal call failed: %d %s: %s", e.Status, e.Code, e.Message)
}

// Credentials is a component key as files hold it.
type Credentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
}

// LoadCredentials reads a component key file.
func LoadCredentials(path string) (Credentials, error) {
	var c Credentials
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("component credentials: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil || c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return c, fmt.Errorf("component credentials %s: not a key pair (%v)", path, err)
	}
	return c, nil
}

// NewClient returns a client of the daemon at url signing with c.
func NewClient(url string, c Credentials, timeout time.Duration) *Client {
	return &Client{BaseURL: url, AccessKeyID: c.AccessKeyID, Secret: c.SecretAccessKey, HTTP: &http.Client{Timeout: timeout}}
}

// Image streams the decrypted image of a registered bundle from walrus.
func (c *Client) Image(ctx context.Context, location, digest string) (io.ReadCloser, int64, error) {
	res, err := c.raw(ctx, http.MethodGet, PathImages+"?"+url.Values{"location": {location}, "digest": {digest}}.Encode(), nil, "")
	if err != nil {
		return nil, 0, fmt.Errorf("image %s: %w", location, err)
	}
	return res.Body, res.ContentLength, nil
}

func (c *Client) region() string {
	if c.Region == "" {
		return "internal"
	}
	return c.Region
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP == nil {
		return http.DefaultClient
	}
	return c.HTTP
}
