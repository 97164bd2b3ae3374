package bundle

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
)

// keyTextLen is the length of an AES-128 key or IV written as hex text,
// which is what the tools RSA-encrypt.
const keyTextLen = 32

// Verify checks the manifest's signature, RSA-SHA1 (PKCS#1 v1.5) over
// m.Signed, with the public key of the user's certificate. It checks only
// the signature: whether the certificate belongs to the account in m.User
// is for the caller to decide. Failures wrap ErrBadSignature.
func (m *Manifest) Verify(cert *x509.Certificate) error {
	if cert == nil {
		return fmt.Errorf("%w: no certificate", ErrBadSignature)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: certificate key is %T, not RSA", ErrBadSignature, cert.PublicKey)
	}
	if len(m.Signed) == 0 || len(m.Signature) == 0 {
		return fmt.Errorf("%w: manifest is not signed", ErrBadSignature)
	}
	sum := sha1.Sum(m.Signed)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA1, sum[:], m.Signature); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return nil
}

// Keys returns the AES key and IV meant for the cloud (ec2_encrypted_key and
// ec2_encrypted_iv). decrypt undoes the RSA PKCS#1 v1.5 encryption with the
// cloud's private key; Decrypter returns one that does not reveal padding
// failures, which the cloud should use because anyone may submit a
// manifest. Failures wrap ErrKeyDecrypt.
func (m *Manifest) Keys(decrypt func(ciphertext []byte) ([]byte, error)) (key, iv []byte, err error) {
	return decryptPair(m.EC2EncryptedKey, m.EC2EncryptedIV, decrypt)
}

// UserKeys is Keys for the user's copy (user_encrypted_key and
// user_encrypted_iv), decrypted with the user's private key.
func (m *Manifest) UserKeys(decrypt func(ciphertext []byte) ([]byte, error)) (key, iv []byte, err error) {
	if m.UserEncryptedKey == "" || m.UserEncryptedIV == "" {
		return nil, nil, fmt.Errorf("%w: manifest has no user_encrypted_key or user_encrypted_iv", ErrKeyDecrypt)
	}
	return decryptPair(m.UserEncryptedKey, m.UserEncryptedIV, decrypt)
}

func decryptPair(keyHex, ivHex string, decrypt func([]byte) ([]byte, error)) (key, iv []byte, err error) {
	if key, err = decryptKey("key", keyHex, decrypt); err != nil {
		return nil, nil, err
	}
	if iv, err = decryptKey("iv", ivHex, decrypt); err != nil {
		return nil, nil, err
	}
	return key, iv, nil
}

func decryptKey(what, h string, decrypt func([]byte) ([]byte, error)) ([]byte, error) {
	ct, err := hex.DecodeString(h)
	if err != nil || len(ct) == 0 {
		return nil, fmt.Errorf("%w: %s ciphertext is not hex", ErrKeyDecrypt, what)
	}
	pt, err := decrypt(ct)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeyDecrypt, what, err)
	}
	pt = bytes.Trim(pt, xmlSpace)
	out := make([]byte, keyTextLen/2)
	if len(pt) != keyTextLen {
		return nil, fmt.Errorf("%w: %s is not 32 hex digits", ErrKeyDecrypt, what)
	}
	if _, err := hex.Decode(out, pt); err != nil {
		return nil, fmt.Errorf("%w: %s is not 32 hex digits", ErrKeyDecrypt, what)
	}
	return out, nil
}

// Decrypter returns a decrypt function for Keys that decrypts with priv
// without disclosing whether a ciphertext was well formed: a ciphertext
// whose PKCS#1 v1.5 padding is wrong, or whose plaintext is not 32 hex
// digits, yields a random 32-digit value instead of an error, in constant
// time (rsa.DecryptPKCS1v15SessionKey). A manifest with a wrong key then
// fails in Open, with ErrKeyDecrypt, the same way whatever the padding was,
// which keeps a caller that reports errors from becoming a Bleichenbacher
// padding oracle. Only a ciphertext of the wrong length fails here.
func Decrypter(priv *rsa.PrivateKey) func(ciphertext []byte) ([]byte, error) {
	return func(ct []byte) ([]byte, error) {
		if priv == nil {
			return nil, errors.New("no private key")
		}
		var raw [keyTextLen / 2]byte
		_, _ = rand.Read(raw[:])
		fallback := make([]byte, keyTextLen)
		hex.Encode(fallback, raw[:])
		pt := bytes.Clone(fallback)
		//lint:ignore SA1019 the bundle format encrypts the key with PKCS#1 v1.5; this is the constant-time way to undo it.
		if err := rsa.DecryptPKCS1v15SessionKey(nil, priv, ct, pt); err != nil {
			return nil, err
		}
		subtle.ConstantTimeCopy(1-allHex(pt), pt, fallback)
		return pt, nil
	}
}

// allHex returns 1 if every byte of b is a hex digit and 0 otherwise, in
// time that depends only on len(b).
func allHex(b []byte) int {
	ok := 1
	for _, c := range b {
		x := int(c)
		digit := subtle.ConstantTimeLessOrEq('0', x) & subtle.ConstantTimeLessOrEq(x, '9')
		lower := subtle.ConstantTimeLessOrEq('a', x) & subtle.ConstantTimeLessOrEq(x, 'f')
		upper := subtle.ConstantTimeLessOrEq('A', x) & subtle.ConstantTimeLessOrEq(x, 'F')
		ok &= digit | lower | upper
	}
	return ok
}
