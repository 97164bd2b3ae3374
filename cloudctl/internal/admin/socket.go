package admin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/koala-cloud/koala/cloudctl/internal/accounts"
	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/cloudctl/internal/images"
	"github.com/koala-cloud/koala/cloudctl/internal/vmtypes"
	"github.com/koala-cloud/koala/pkg/adminsock"
	"github.com/koala-cloud/koala/pkg/api"
)

// The admin socket speaks JSON over HTTP. Reaching the socket is the
// authorisation: it is created mode 0600 for the daemon's owner.

// Handler serves s on the admin socket.
func Handler(s *Service, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	reply := adminsock.Replier(httpStatus, log)
	mux.HandleFunc("POST /admin/accounts", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Name, Email string }
		if !adminsock.Decode(w, r, &req) {
			return
		}
		c, err := s.CreateAccount(r.Context(), req.Name, req.Email)
		reply(w, c, err)
	})
	mux.HandleFunc("GET /admin/accounts", func(w http.ResponseWriter, r *http.Request) {
		as, err := s.Accounts(r.Context())
		reply(w, as, err)
	})
	mux.HandleFunc("DELETE /admin/accounts/{name}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{}, s.DeleteAccount(r.Context(), r.PathValue("name")))
	})
	mux.HandleFunc("POST /admin/accounts/{name}/keys", func(w http.ResponseWriter, r *http.Request) {
		c, err := s.CreateKey(r.Context(), r.PathValue("name"))
		reply(w, c, err)
	})
	mux.HandleFunc("GET /admin/accounts/{name}/keys", func(w http.ResponseWriter, r *http.Request) {
		ks, err := s.Keys(r.Context(), r.PathValue("name"))
		reply(w, ks, err)
	})
	mux.HandleFunc("DELETE /admin/keys/{id}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{}, s.DeleteKey(r.Context(), r.PathValue("id")))
	})
	mux.HandleFunc("GET /admin/accounts/{name}/credentials", func(w http.ResponseWriter, r *http.Request) {
		b, err := s.Credentials(r.Context(), r.PathValue("name"))
		reply(w, b, err)
	})
	mux.HandleFunc("POST /admin/accounts/{name}/certs", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ PEM string }
		if !adminsock.Decode(w, r, &req) {
			return
		}
		c, err := s.AddSigningCert(r.Context(), r.PathValue("name"), req.PEM)
		reply(w, c, err)
	})
	mux.HandleFunc("PUT /admin/image-defaults", func(w http.ResponseWriter, r *http.Request) {
		var d images.Defaults
		if !adminsock.Decode(w, r, &d) {
			return
		}
		reply(w, struct{}{}, s.SetImageDefaults(r.Context(), d))
	})
	mux.HandleFunc("GET /admin/vmtypes", func(w http.ResponseWriter, r *http.Request) {
		ts, err := s.VMTypes(r.Context())
		reply(w, ts, err)
	})
	mux.HandleFunc("PUT /admin/vmtypes", func(w http.ResponseWriter, r *http.Request) {
		var t api.VMType
		if !adminsock.Decode(w, r, &t) {
			return
		}
		reply(w, struct{}{}, s.SetVMType(r.Context(), t))
	})
	mux.HandleFunc("DELETE /admin/vmtypes/{name}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{}, s.DeleteVMType(r.Context(), r.PathValue("name")))
	})
	mux.HandleFunc("GET /admin/clusters", func(w http.ResponseWriter, r *http.Request) {
		cs, err := s.Clusters(r.Context())
		reply(w, cs, err)
	})
	mux.HandleFunc("PUT /admin/clusters/{zone}", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ URL string }
		if !adminsock.Decode(w, r, &req) {
			return
		}
		reply(w, struct{}{}, s.RegisterCluster(r.Context(), r.PathValue("zone"), req.URL))
	})
	mux.HandleFunc("PUT /admin/clusters/{zone}/addresses", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Pool []string
			Auto bool
		}
		if !adminsock.Decode(w, r, &req) {
			return
		}
		reply(w, struct{}{}, s.SetClusterAddresses(r.Context(), r.PathValue("zone"), req.Pool, req.Auto))
	})
	mux.HandleFunc("PUT /admin/clusters/{zone}/ebs", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ URL string }
		if !adminsock.Decode(w, r, &req) {
			return
		}
		reply(w, struct{}{}, s.SetClusterEBS(r.Context(), r.PathValue("zone"), req.URL))
	})
	mux.HandleFunc("DELETE /admin/clusters/{zone}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{}, s.DeregisterCluster(r.Context(), r.PathValue("zone")))
	})
	mux.HandleFunc("POST /admin/component-keys/{name}", func(w http.ResponseWriter, r *http.Request) {
		k, err := s.ComponentKey(r.Context(), r.PathValue("name"))
		reply(w, k, err)
	})
	return mux
}

// httpStatus maps the service's errors to the socket's HTTP statuses: 0 for
// an unexpected one.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, accounts.ErrNoSuchAccount), errors.Is(err, accounts.ErrNoSuchKey):
		return http.StatusNotFound
	case errors.Is(err, accounts.ErrExists), errors.Is(err, accounts.ErrBadName),
		errors.Is(err, accounts.ErrTooManyKeys), errors.Is(err, ErrInitialized),
		errors.Is(err, accounts.ErrBadCert), errors.Is(err, images.ErrState), errors.Is(err, images.ErrNotFound),
		errors.Is(err, vmtypes.ErrInvalid), errors.Is(err, clusters.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, vmtypes.ErrNotFound), errors.Is(err, clusters.ErrNotFound):
		return http.StatusNotFound
	}
	return 0
}

// Client calls the admin service of a running daemon over its socket.
type Client struct {
	sock *adminsock.Client
}

// Dial returns a client for the socket at path, or an error when no
// daemon answers there.
func Dial(ctx context.Context, path string) (*Client, error) {
	sock, err := adminsock.Dial(ctx, path)
	if err != nil {
		return nil, err
	}
	sock.MaxResponse = 1 << 20
	return &Client{sock: sock}, nil
}

// CreateAccount is Service.CreateAccount over the socket.
func (c *Client) CreateAccount(ctx context.Context, name, email string) (Credential, error) {
	var out Credential
	err := c.sock.Call(ctx, "POST", "/admin/accounts", map[string]string{"Name": name, "Email": email}, &out)
	return out, err
}

// Accounts is Service.Accounts over the socket.
func (c *Client) Accounts(ctx context.Context) ([]accounts.Account, error) {
	var out []accounts.Account
	err := c.sock.Call(ctx, "GET", "/admin/accounts", nil, &out)
	return out, err
}

// DeleteAccount is Service.DeleteAccount over the socket.
func (c *Client) DeleteAccount(ctx context.Context, name string) error {
	return c.sock.Call(ctx, "DELETE", "/admin/accounts/"+url.PathEscape(name), nil, &struct{}{})
}

// CreateKey is Service.CreateKey over the socket.
func (c *Client) CreateKey(ctx context.Context, account string) (Credential, error) {
	var out Credential
	err := c.sock.Call(ctx, "POST", "/admin/accounts/"+url.PathEscape(account)+"/keys", nil, &out)
	return out, err
}

// Keys is Service.Keys over the socket.
func (c *Client) Keys(ctx context.Context, account string) ([]Key, error) {
	var out []Key
	err := c.sock.Call(ctx, "GET", "/admin/accounts/"+url.PathEscape(account)+"/keys", nil, &out)
	return out, err
}

// DeleteKey is Service.DeleteKey over the socket.
func (c *Client) DeleteKey(ctx context.Context, id string) error {
	return c.sock.Call(ctx, "DELETE", "/admin/keys/"+url.PathEscape(id), nil, &struct{}{})
}

// Credentials is Service.Credentials over the socket.
func (c *Client) Credentials(ctx context.Context, account string) (Bundle, error) {
	var out Bundle
	err := c.sock.Call(ctx, "GET", "/admin/accounts/"+url.PathEscape(account)+"/credentials", nil, &out)
	return out, err
}

// AddSigningCert is Service.AddSigningCert over the socket.
func (c *Client) AddSigningCert(ctx context.Context, account, certPEM string) (accounts.Cert, error) {
	var out accounts.Cert
	err := c.sock.Call(ctx, "POST", "/admin/accounts/"+url.PathEscape(account)+"/certs", map[string]string{"PEM": certPEM}, &out)
	return out, err
}

// SetImageDefaults is Service.SetImageDefaults over the socket.
func (c *Client) SetImageDefaults(ctx context.Context, d images.Defaults) error {
	return c.sock.Call(ctx, "PUT", "/admin/image-defaults", d, &struct{}{})
}

// VMTypes is Service.VMTypes over the socket.
func (c *Client) VMTypes(ctx context.Context) ([]api.VMType, error) {
	var out []api.VMType
	err := c.sock.Call(ctx, "GET", "/admin/vmtypes", nil, &out)
	return out, err
}

// SetVMType is Service.SetVMType over the socket.
func (c *Client) SetVMType(ctx context.Context, t api.VMType) error {
	return c.sock.Call(ctx, "PUT", "/admin/vmtypes", t, &struct{}{})
}

// DeleteVMType is Service.DeleteVMType over the socket.
func (c *Client) DeleteVMType(ctx context.Context, name string) error {
	return c.sock.Call(ctx, "DELETE", "/admin/vmtypes/"+url.PathEscape(name), nil, &struct{}{})
}

// Clusters is Service.Clusters over the socket.
func (c *Client) Clusters(ctx context.Context) ([]clusters.Cluster, error) {
	var out []clusters.Cluster
	err := c.sock.Call(ctx, "GET", "/admin/clusters", nil, &out)
	return out, err
}

// RegisterCluster is Service.RegisterCluster over the socket.
func (c *Client) RegisterCluster(ctx context.Context, zone, u string) error {
	return c.sock.Call(ctx, "PUT", "/admin/clusters/"+url.PathEscape(zone), map[string]string{"URL": u}, &struct{}{})
}

// SetClusterAddresses is Service.SetClusterAddresses over the socket.
func (c *Client) SetClusterAddresses(ctx context.Context, zone string, pool []string, auto bool) error {
	req := struct {
		Pool []string
		Auto bool
	}{pool, auto}
	return c.sock.Call(ctx, "PUT", "/admin/clusters/"+url.PathEscape(zone)+"/addresses", req, &struct{}{})
}

// SetClusterEBS is Service.SetClusterEBS over the socket.
func (c *Client) SetClusterEBS(ctx context.Context, zone, u string) error {
	return c.sock.Call(ctx, "PUT", "/admin/clusters/"+url.PathEscape(zone)+"/ebs", map[string]string{"URL": u}, &struct{}{})
}

// DeregisterCluster is Service.DeregisterCluster over the socket.
func (c *Client) DeregisterCluster(ctx context.Context, zone string) error {
	return c.sock.Call(ctx, "DELETE", "/admin/clusters/"+url.PathEscape(zone), nil, &struct{}{})
}

// ComponentKey is Service.ComponentKey over the socket.
func (c *Client) ComponentKey(ctx context.Context, name string) (ComponentKey, error) {
	var out ComponentKey
	err := c.sock.Call(ctx, "POST", "/admin/component-keys/"+url.PathEscape(name), nil, &out)
	return out, err
}
