// Package state declares cloudctl's bbolt database: every top-level bucket
// and the schema version, in one place.
package state
