package keypair

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math/big"
	"strings"
)

// The SSH wire encoding (RFC 4251 section 5) of the two key types EC2
// knows, and OpenSSH's private key format (PROTOCOL.key in OpenSSH).

const (
	nameRSA     = "ssh-rsa"
	nameEd25519 = "ssh-ed25519"
)

var errShort = errors.New("truncated key data")

func appendUint32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func appendString(b []byte, s []byte) []byte {
	b = appendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendMPInt appends a non-negative integer as an SSH mpint: big-endian,
// minimal, with a leading zero byte when the top bit is set.
func appendMPInt(b []byte, v *big.Int) []byte {
	m := v.Bytes()
	if len(m) > 0 && m[0]&0x80 != 0 {
		m = append([]byte{0}, m...)
	}
	return appendString(b, m)
}

func readString(b []byte) (s, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, errShort
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, errShort
	}
	return b[4 : 4+n], b[4+n:], nil
}

func readMPInt(b []byte) (*big.Int, []byte, error) {
	m, rest, err := readString(b)
	if err != nil {
		return nil, nil, err
	}
	if len(m) > 0 && m[0]&0x80 != 0 {
		return nil, nil, errors.New("negative integer in key data")
	}
	return new(big.Int).SetBytes(m), rest, nil
}

func rsaBlob(pub *rsa.PublicKey) []byte {
	b := appendString(nil, []byte(nameRSA))
	b = appendMPInt(b, big.NewInt(int64(pub.E)))
	return appendMPInt(b, pub.N)
}

func ed25519Blob(pub ed25519.PublicKey) []byte {
	b := appendString(nil, []byte(nameEd25519))
	return appendString(b, pub)
}

// authorizedKey is the authorized_keys form of a blob, without comment.
func authorizedKey(name string, blob []byte) string {
	return name + " " + base64.StdEncoding.EncodeToString(blob)
}

// parseBlob reads an SSH public key blob of either type EC2 accepts. The
// whole blob must be used.
func parseBlob(blob []byte) (any, error) {
	name, rest, err := readString(blob)
	if err != nil {
		return nil, err
	}
	switch string(name) {
	case nameRSA:
		e, rest, err := readMPInt(rest)
		if err != nil {
			return nil, err
		}
		n, rest, err := readMPInt(rest)
		if err != nil {
			return nil, err
		}
		if len(rest) != 0 {
			return nil, errors.New("trailing data after key")
		}
		if e.BitLen() > 31 {
			return nil, errors.New("rsa public exponent too large")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case nameEd25519:
		k, rest, err := readString(rest)
		if err != nil {
			return nil, err
		}
		if len(rest) != 0 {
			return nil, errors.New("trailing data after key")
		}
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("ed25519 public key is not 32 bytes")
		}
		return ed25519.PublicKey(append([]byte(nil), k...)), nil
	default:
		return nil, unsupported(string(name))
	}
}

// unsupported is the error for a key type EC2 does not take.
func unsupported(name string) error {
	if len(name) > 64 {
		name = name[:64] + "..."
	}
	return errors.New("unsupported key type " + quote(name))
}

// quote quotes s for an error message, keeping it printable ASCII.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			b.WriteByte('?')
			continue
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// opensshPrivate encodes an ed25519 key in OpenSSH's private key format,
// unencrypted, as ssh-keygen writes it (base64 wrapped at 70 columns).
func opensshPrivate(priv ed25519.PrivateKey, comment string) ([]byte, error) {
	pub := priv.Public().(ed25519.PublicKey)
	var check [4]byte
	if _, err := rand.Read(check[:]); err != nil {
		return nil, err
	}
	sec := make([]byte, 0, 160)
	sec = append(sec, check[:]...)
	sec = append(sec, check[:]...) // the two check integers are equal
	sec = appendString(sec, []byte(nameEd25519))
	sec = appendString(sec, pub)
	sec = appendString(sec, priv) // seed || public key, 64 bytes
	sec = appendString(sec, []byte(comment))
	for i := byte(1); len(sec)%8 != 0; i++ { // cipher "none" has block size 8
		sec = append(sec, i)
	}

	b := []byte("openssh-key-v1\x00")
	b = appendString(b, []byte("none")) // cipher
	b = appendString(b, []byte("none")) // kdf
	b = appendString(b, nil)            // kdf options
	b = appendUint32(b, 1)              // number of keys
	b = appendString(b, ed25519Blob(pub))
	b = appendString(b, sec)
	return armor("OPENSSH PRIVATE KEY", b, 70), nil
}

// armor writes data as a PEM-style block with base64 lines of width
// characters.
func armor(label string, data []byte, width int) []byte {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	b.WriteString("-----BEGIN " + label + "-----\n")
	for len(enc) > width {
		b.WriteString(enc[:width])
		b.WriteByte('\n')
		enc = enc[width:]
	}
	if enc != "" {
		b.WriteString(enc)
		b.WriteByte('\n')
	}
	b.WriteString("-----END " + label + "-----\n")
	return []byte(b.String())
}
