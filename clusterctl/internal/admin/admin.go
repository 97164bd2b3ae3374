package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/koala-cloud/koala/clusterctl/internal/cluster"
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
	reply := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			status := http.StatusInternalServerError
			switch {
			case errors.Is(err, cluster.ErrNoNode):
				status = http.StatusNotFound
			case errors.Is(err, cluster.ErrInvalid):
				status = http.StatusBadRequest
			default:
				log.Error("admin", "err", err)
			}
			http.Error(w, err.Error(), status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /admin/nodes", func(w http.ResponseWriter, r *http.Request) {
		ns, err := s.Nodes(r.Context())
		reply(w, ns, err)
	})
	mux.HandleFunc("PUT /admin/nodes/{name}", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			URL string `json:"url"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
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

// Client calls the admin service of a running daemon over its socket.
type Client struct {
	http *http.Client
}

// Dial returns a client for the socket at path, or an error when no
// daemon answers there.
func Dial(ctx context.Context, path string) (*Client, error) {
	conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	conn.Close()
	return &Client{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}}, nil
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://admin"+path, body)
	if err != nil {
		return err
	}
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, out)
}

// Nodes is Service.Nodes over the socket.
func (c *Client) Nodes(ctx context.Context) ([]cluster.NodeInfo, error) {
	var out []cluster.NodeInfo
	err := c.call(ctx, http.MethodGet, "/admin/nodes", nil, &out)
	return out, err
}

// RegisterNode is Service.RegisterNode over the socket.
func (c *Client) RegisterNode(ctx context.Context, name, nodeURL string) (cluster.NodeInfo, error) {
	var out cluster.NodeInfo
	err := c.call(ctx, http.MethodPut, "/admin/nodes/"+url.PathEscape(name), map[string]string{"url": nodeURL}, &out)
	return out, err
}

// DeregisterNode is Service.DeregisterNode over the socket.
func (c *Client) DeregisterNode(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/admin/nodes/"+url.PathEscape(name), nil, &struct{}{})
}
