package admin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/koala-cloud/koala/clusterctl/internal/cluster"
	"github.com/koala-cloud/koala/pkg/adminsock"
)

// Service is what the admin verbs act on: the cluster.
type Service interface {
	Nodes(ctx context.Context) ([]cluster.NodeInfo, error)
	RegisterNode(ctx context.Context, name, url string) (cluster.NodeInfo, error)
	DeregisterNode(ctx context.Context, name string) error
}

// Handler serves s on the admin socket.
func Handler(s Service, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	reply := adminsock.Replier(httpStatus, log)
	mux.HandleFunc("GET /admin/nodes", func(w http.ResponseWriter, r *http.Request) {
		ns, err := s.Nodes(r.Context())
		reply(w, ns, err)
	})
	mux.HandleFunc("PUT /admin/nodes/{name}", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			URL string `json:"url"`
		}
		if !adminsock.Decode(w, r, &req) {
			return
		}
		n, err := s.RegisterNode(r.Context(), r.PathValue("name"), req.URL)
		reply(w, n, err)
	})
	mux.HandleFunc("DELETE /admin/nodes/{name}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{}, s.DeregisterNode(r.Context(), r.PathValue("name")))
	})
	return mux
}

// httpStatus maps the cluster's errors to the socket's HTTP statuses: 0
// for an unexpected one.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, cluster.ErrNoNode):
		return http.StatusNotFound
	case errors.Is(err, cluster.ErrInvalid):
		return http.StatusBadRequest
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
	return &Client{sock: sock}, nil
}

// Nodes is Service.Nodes over the socket.
func (c *Client) Nodes(ctx context.Context) ([]cluster.NodeInfo, error) {
	var out []cluster.NodeInfo
	err := c.sock.Call(ctx, http.MethodGet, "/admin/nodes", nil, &out)
	return out, err
}

// RegisterNode is Service.RegisterNode over the socket.
func (c *Client) RegisterNode(ctx context.Context, name, nodeURL string) (cluster.NodeInfo, error) {
	var out cluster.NodeInfo
	err := c.sock.Call(ctx, http.MethodPut, "/admin/nodes/"+url.PathEscape(name), map[string]string{"url": nodeURL}, &out)
	return out, err
}

// DeregisterNode is Service.DeregisterNode over the socket.
func (c *Client) DeregisterNode(ctx context.Context, name string) error {
	return c.sock.Call(ctx, http.MethodDelete, "/admin/nodes/"+url.PathEscape(name), nil, &struct{}{})
}
