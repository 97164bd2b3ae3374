// Package ident makes the identifiers the cloud hands out: 12-digit
// account IDs, canonical user IDs, access key pairs, and resource IDs in
// AWS's forms (i-, sg-, key-, ... followed by 17 hex digits), all from
// crypto/rand.
package ident

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"math/big"
)

// AccountID returns a 12-digit account ID that does not start with 0.
func AccountID() string {
	lo := new(big.Int).Exp(big.NewInt(10), big.NewInt(11), nil)
	span := new(big.Int).Mul(lo, big.NewInt(9))
	v, _ := rand.Int(rand.Reader, span)
	return v.Add(v, lo).String()
}

// CanonicalID returns a canonical user ID: 64 hex digits.
func CanonicalID() string { return randHex(32) }

// AccessKeyID returns an access key ID in AWS's form: AKIA and 16
// characters of A-Z2-7.
func AccessKeyID() string {
	const set = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = set[int(b[i])%len(set)]
	}
	return "AKIA" + string(b)
}

// SecretKey returns a 40-character secret access key.
func SecretKey() string {
	b := make([]byte, 30)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// Resource returns a resource ID: prefix, a dash, and 17 hex digits
// (Resource("sg") is like "sg-0a1b2c3d4e5f67890").
func Resource(prefix string) string { return prefix + "-" + randHex(9)[:17] }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// CertificateID returns a signing certificate's ID in IAM's form: 32
// upper-case letters and digits.
func CertificateID() string {
	const set = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = set[int(b[i])%len(set)]
	}
	return string(b)
}
