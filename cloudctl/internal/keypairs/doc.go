// Package keypairs stores the key pairs of each account in cloudctl's
// database: name, key-... ID, type, fingerprint and public key (the
// private key of a created pair is returned once and never kept).
package keypairs
