// Package keypair makes and reads EC2 key pairs the way Amazon EC2 does:
// Generate is CreateKeyPair (KeyFormat=pem) and Import is ImportKeyPair.
//
// What goes out matches EC2. An RSA key is 2048 bits and its private key is
// PKCS#1 PEM ("RSA PRIVATE KEY"); an ED25519 private key is in OpenSSH's own
// format ("OPENSSH PRIVATE KEY"). The public key is in OpenSSH
// authorized_keys form without a comment; EC2 shows the key name as the
// comment, so the API edge appends it.
//
// Fingerprints are the ones EC2 reports, which differ by key type and by
// how the key got there (see "Verify the fingerprint of your key pair",
// https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/verify-keys.html, and
// KeyPairInfo.keyFingerprint in the EC2 API reference):
//
//   - RSA, created by EC2: the SHA-1 digest of the DER PKCS#8 private key,
//     as colon-separated lower-case hex (openssl pkcs8 -topk8 -nocrypt
//     -outform DER | openssl sha1 -c).
//   - RSA, imported: the MD5 digest of the DER SubjectPublicKeyInfo, as
//     colon-separated lower-case hex (openssl rsa -pubout -outform DER |
//     openssl md5 -c). The same key created by EC2 and later imported thus
//     has two different fingerprints.
//   - ED25519, created or imported: the SHA-256 digest of the SSH public key
//     blob, base64 with its '=' padding and without the "SHA256:" prefix
//     (ssh-keygen -l prints the same digest unpadded).
//
// Import accepts what EC2 documents: RSA and ED25519 keys in OpenSSH
// public key format, and for RSA also the RFC 4716 SSH2 public key file
// format and base64 DER. It also accepts RSA public keys in PEM ("PUBLIC
// KEY", "RSA PUBLIC KEY"), which EC2 does not document. RSA moduli must be
// 1024 to 4096 bits. DSA, ECDSA, security-key and certificate keys, and
// anything unreadable, are refused with an error wrapping ErrFormat, which
// the API edge answers with InvalidKey.Format.
package keypair
