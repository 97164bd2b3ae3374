// Package api holds the JSON types the daemons exchange under
// /internal/v1/... (ARCHITECTURE.md, "Inter-daemon protocol"). Errors
// travel as an AWS code and message and are rebuilt on the other side.
package api
