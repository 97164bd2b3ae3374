// Package server assembles walrus: its configuration, the object store,
// the credential provider and the S3 API behind an HTTP listener, as a
// library with New, Start, Ready and Close so that tests run it in-process.
package server
