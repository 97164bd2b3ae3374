// Package accounts is walrus's standalone credential provider: accounts
// and their access keys kept in a JSON file, reloaded when it changes, and
// the admin verb that adds accounts to it. Once cloudctl owns accounts,
// walrus asks it instead and this provider serves standalone use only.
package accounts
