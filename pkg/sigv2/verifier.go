package sigv2

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultMaxSkew is the clock skew allowed when MaxSkew is 0.
const DefaultMaxSkew = 15 * time.Minute

// Credentials resolves secret keys. Implementations return an error
// wrapping ErrUnknownKey when the access key ID is not known.
type Credentials interface {
	SecretKey(ctx context.Context, accessKeyID string) (string, error)
}

// Auth describes a verified request.
type Auth struct {
	AccessKeyID string
	// Time is the request date (header form, EC2 Timestamp) or the expiry
	// (presigned S3, EC2 Expires).
	Time      time.Time
	Presigned bool
}

// clock holds the settings both verifiers share.
type clock struct {
	now     func() time.Time
	maxSkew time.Duration
}

func (c clock) time() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

func (c clock) skew() time.Duration {
	if c.maxSkew > 0 {
		return c.maxSkew
	}
	return DefaultMaxSkew
}

// checkSkew reports ErrSkewed when t is more than the allowed skew away
// from now.
func (c clock) checkSkew(t time.Time) error {
	now := c.time()
	if d := now.Sub(t); d > c.skew() || -d > c.skew() {
		return fmt.Errorf("%w: request time %s, server time %s", ErrSkewed, t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

func secretKey(ctx context.Context, keys Credentials, accessKeyID string) (string, error) {
	secret, err := keys.SecretKey(ctx, accessKeyID)
	if err != nil {
		return "", fmt.Errorf("access key %q: %w", accessKeyID, err)
	}
	return secret, nil
}

// decodeSignature decodes a base64 signature; a '+' turned into a space by
// form decoding is put back.
func decodeSignature(s string) ([]byte, bool) {
	b, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(s, " ", "+"))
	return b, err == nil
}

// parseHTTPDate parses the date formats HTTP allows plus RFC 1123 with a
// numeric zone (euca2ools sends "-0000") and ISO 8601 basic.
func parseHTTPDate(s string) (time.Time, error) {
	if t, err := http.ParseTime(s); err == nil {
		return t, nil
	}
	for _, layout := range []string{time.RFC1123Z, time.RFC1123, "20060102T150405Z"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unknown date format %q", s)
}

// queryUnescape decodes a query component ('+' is a space); a component
// that is not validly escaped is taken literally.
func queryUnescape(s string) string {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return u
}
