// Package accounts keeps the cloud's accounts and access keys in
// cloudctl's database: creating, listing and deleting them, and resolving
// an access key to its secret and account for every daemon's signature
// checks. Component keys (the credentials daemons sign internal calls
// with) live beside user keys but belong to no account.
package accounts
