// Package sigv4 verifies and creates AWS Signature Version 4 signatures.
//
// A Verifier checks both forms a client may use: the Authorization header
// ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...") and
// the presigned query string (X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date,
// X-Amz-Expires, X-Amz-SignedHeaders, X-Amz-Signature). The work is split
// into small pure steps that mirror the AWS documentation: the canonical
// URI, the canonical query, the canonical headers, the canonical request,
// the string to sign, the derived signing key, and a constant-time compare.
//
// The canonical URI depends on the service. For "s3" the path is taken
// exactly as the client sent it on the request line (r.RequestURI), never
// as Go decoded it: bytes outside the unreserved set are percent-encoded and
// escapes are written in upper case, so a key's "/" sent as "%2F" stays
// "%2F". Because clients disagree, two more forms are accepted for s3 when
// they differ: the path decoded and encoded again with "/" kept (what S3
// computes; Amazon's ec2-ami-tools send "%2F" but sign "/"), and the path
// byte for byte as sent. All three name the same object. For every other
// service the path is normalised (dot segments and empty segments removed)
// and URI-encoded once more, as the AWS test suite and SDKs do.
//
// The payload is covered according to x-amz-content-sha256:
//
//   - a hex SHA-256: the body is hashed while it is read;
//   - UNSIGNED-PAYLOAD: the body is left alone;
//   - STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] and
//     STREAMING-UNSIGNED-PAYLOAD-TRAILER: the aws-chunked body is decoded
//     while it is read, each chunk signature (and the trailer signature) is
//     checked at the end of its chunk, and trailing headers such as
//     x-amz-checksum-crc32 are reported in Auth.Trailer;
//   - absent (header form, services other than s3): the body, at most
//     MaxBufferedBody bytes, is read and hashed before the signature check.
//
// In each case where Verify replaces r.Body, a payload error (a hash that
// does not match, a bad chunk signature, a short body) is returned by the
// Read that would otherwise have returned io.EOF, so a consumer that reads to
// io.EOF before committing never commits bad data. Memory stays bounded for
// any body size.
//
// Errors wrap one of the exported sentinel errors so that the API edge can
// choose the AWS error code with errors.Is.
package sigv4
