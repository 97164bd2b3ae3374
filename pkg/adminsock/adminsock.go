package adminsock

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// DefaultMaxResponse is the largest answer a Client reads unless told
// otherwise.
const DefaultMaxResponse = 16 << 20

// maxRequest bounds a request body Decode reads.
const maxRequest = 1 << 16

// Listen listens on a unix socket at path, mode 0600. A file already at
// path is removed first: it is the leftover of a daemon that died.
func Listen(path string) (net.Listener, error) {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Replier returns a handler's reply function: it answers v as JSON when
// err is nil, else err's text with the status that status maps err to.
// status returns 0 for an unexpected error: that one is logged and
// answered 500.
func Replier(status func(error) int, log *slog.Logger) func(w http.ResponseWriter, v any, err error) {
	return func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			code := status(err)
			if code == 0 {
				code = http.StatusInternalServerError
				log.Error("admin", "err", err)
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
}

// Decode reads r's JSON body (64 KiB at most) into v. When it cannot, it
// answers 400 with the reason and returns false.
func Decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequest)).Decode(v); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// Client calls a daemon's admin socket.
type Client struct {
	// MaxResponse bounds the answer read, in bytes; 0 means
	// DefaultMaxResponse.
	MaxResponse int64

	http *http.Client
}

// Dial returns a client for the socket at path, or an error when no
// daemon answers there within a second.
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

// Call sends in (none when nil) as JSON with method to path and decodes
// the answer into out. A status other than 200 is an error whose text is
// the answer's.
func (c *Client) Call(ctx context.Context, method, path string, in, out any) error {
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
	limit := c.MaxResponse
	if limit <= 0 {
		limit = DefaultMaxResponse
	}
	data, _ := io.ReadAll(io.LimitReader(res.Body, limit))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, out)
}
