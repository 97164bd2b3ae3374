// Package capture loads HTTP requests captured from real clients and
// rebuilds them as a Go HTTP server would hand them to a handler.
//
// The captures live in testdata/requests/captured.jsonl at the top of the
// module: one JSON object per line with the arrival time, the method, the
// request-target as sent, the headers as name/value pairs in arrival order,
// the body in base64 and the client's User-Agent. Signature verifiers and
// the daemons that use them replay these requests in their tests, unchanged
// or with one byte altered (see Mutate), to check that exactly the signed
// bytes matter.
//
// The package is meant for tests; it lives under internal/ so that only
// this module can import it.
package capture
