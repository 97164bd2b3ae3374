package metadata

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Token errors.
var (
	// ErrTokenInvalid is a token that is malformed or not signed for this
	// instance under this service's key.
	ErrTokenInvalid = errors.New("invalid metadata token")
	// ErrTokenExpired is a genuine token whose TTL has passed.
	ErrTokenExpired = errors.New("expired metadata token")
)

// A token is base64url(version | expiry | nonce | mac) where expiry is Unix
// milliseconds (8 bytes, big endian), nonce 8 random bytes and mac
// HMAC-SHA256(key, domain | instance ID | 0 | version | expiry | nonce).
const (
	tokenVersion = 1
	tokenHead    = 1 + 8 + 8
	tokenLen     = tokenHead + sha256.Size
	tokenDomain  = "koala imds token\x00"
)

// mintToken returns a token for instanceID valid for ttl from now.
func (s *Service) mintToken(instanceID string, ttl time.Duration) string {
	buf := make([]byte, tokenLen)
	buf[0] = tokenVersion
	binary.BigEndian.PutUint64(buf[1:9], uint64(s.now().Add(ttl).UnixMilli()))
	rand.Read(buf[9:tokenHead]) // never fails (crypto/rand, Go 1.24+)
	copy(buf[tokenHead:], s.tokenMAC(instanceID, buf[:tokenHead]))
	return base64.RawURLEncoding.EncodeToString(buf)
}

// verifyToken checks that tok was minted for instanceID and has not expired.
func (s *Service) verifyToken(tok, instanceID string) error {
	buf, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(buf) != tokenLen || buf[0] != tokenVersion {
		return fmt.Errorf("instance %s: %w", instanceID, ErrTokenInvalid)
	}
	if !hmac.Equal(buf[tokenHead:], s.tokenMAC(instanceID, buf[:tokenHead])) {
		return fmt.Errorf("instance %s: %w", instanceID, ErrTokenInvalid)
	}
	expiry := time.UnixMilli(int64(binary.BigEndian.Uint64(buf[1:9])))
	if !s.now().Before(expiry) {
		return fmt.Errorf("instance %s: token expired at %s: %w", instanceID, expiry.UTC().Format(time.RFC3339), ErrTokenExpired)
	}
	return nil
}

func (s *Service) tokenMAC(instanceID string, head []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(tokenDomain))
	m.Write([]byte(instanceID))
	m.Write([]byte{0})
	m.Write(head)
	return m.Sum(nil)
}
