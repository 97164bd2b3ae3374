package tools

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Keys are what a bundle is made with.
type Keys struct {
	// User is the owner's 12-digit account ID.
	User string
	// UserCert and UserKey sign the manifest; the bundle key is
	// encrypted for UserCert too, so that the user can unbundle.
	UserCert *x509.Certificate
	UserKey  *rsa.PrivateKey
	// CloudCert is the certificate of the cloud that will decrypt the
	// bundle.
	CloudCert *x509.Certificate
}

// ParseCert parses the first CERTIFICATE block of PEM text.
func ParseCert(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// LoadCert reads a PEM certificate file.
func LoadCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cert, err := ParseCert(data)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", path, err)
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("certificate %s: key is %T, bundles need RSA", path, cert.PublicKey)
	}
	return cert, nil
}

// LoadKey reads a PEM RSA private key file, PKCS#1 or PKCS#8.
func LoadKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("private key %s: no PEM PRIVATE KEY block", path)
		}
		switch block.Type {
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("private key %s: %w", path, err)
			}
			return k, nil
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("private key %s: %w", path, err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("private key %s: key is %T, bundles need RSA", path, k)
			}
			return rk, nil
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("private key %s is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)", path)
		}
	}
}

// checkPair reports whether key is the private key of cert.
func checkPair(cert *x509.Certificate, key *rsa.PrivateKey) error {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return errors.New("the private key does not belong to the user certificate")
	}
	return nil
}

// userDecrypter undoes the RSA encryption of the user's copy of a bundle
// key. Unlike the cloud, the user's own tool may say plainly that a key
// does not fit.
func userDecrypter(key *rsa.PrivateKey) func([]byte) ([]byte, error) {
	return func(ct []byte) ([]byte, error) {
		pt, err := key.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{})
		if err != nil {
			return nil, errors.New("the private key does not decrypt it (the bundle was made for another user certificate)")
		}
		return pt, nil
	}
}

type cloudCertificateResponse struct {
	Certificate string `xml:"certificate"`
}

// CloudCertificate asks the cloud for its certificate with
// DescribeCloudCertificate, an extension of this cloud's EC2 API.
func (c *Client) CloudCertificate(ctx context.Context) (*x509.Certificate, error) {
	var out cloudCertificateResponse
	if err := c.callEC2(ctx, "DescribeCloudCertificate", nil, &out); err != nil {
		return nil, err
	}
	cert, err := ParseCert([]byte(strings.TrimSpace(out.Certificate)))
	if err != nil {
		return nil, fmt.Errorf("DescribeCloudCertificate: %w", err)
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("DescribeCloudCertificate: key is %T, bundles need RSA", cert.PublicKey)
	}
	return cert, nil
}
