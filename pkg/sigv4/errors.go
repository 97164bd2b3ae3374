package sigv4

import "errors"

// Sentinel errors returned (wrapped, with details) by Verify and the body
// readers it installs. The comment on each names the AWS error code the API
// edge is expected to answer with.
var (
	// ErrMalformed reports an Authorization header or presigned query that
	// cannot be parsed or is inconsistent (bad credential scope, date
	// format, SignedHeaders without host, X-Amz-Expires out of range...).
	// AuthorizationHeaderMalformed for the header form,
	// AuthorizationQueryParametersError for the query form (see IsPresigned).
	ErrMalformed = errors.New("malformed sigv4 authorization")

	// ErrUnknownKey reports an access key ID that the key store does not
	// know. Credentials implementations return an error wrapping it.
	// InvalidAccessKeyId.
	ErrUnknownKey = errors.New("unknown access key id")

	// ErrSignature reports a signature (request, chunk or trailer) that does
	// not match. SignatureDoesNotMatch.
	ErrSignature = errors.New("signature does not match")

	// ErrExpired reports a presigned request used after X-Amz-Date plus
	// X-Amz-Expires. AccessDenied "Request has expired".
	ErrExpired = errors.New("request has expired")

	// ErrNotYetValid reports a presigned request whose X-Amz-Date lies in
	// the future by more than the allowed skew. AccessDenied "Request is not
	// valid yet".
	ErrNotYetValid = errors.New("request is not valid yet")

	// ErrSkewed reports a header-signed request whose date is outside the
	// allowed clock skew. RequestTimeTooSkewed.
	ErrSkewed = errors.New("request time too skewed")

	// ErrContentSHA256 reports a body that does not hash to the value of
	// x-amz-content-sha256, or a value that is not a valid hash.
	// XAmzContentSHA256Mismatch.
	ErrContentSHA256 = errors.New("body does not match x-amz-content-sha256")

	// ErrMissingContentSHA256 reports a header-signed request without
	// x-amz-content-sha256 whose payload cannot be hashed up front: any s3
	// request, or a body larger than MaxBufferedBody. InvalidRequest
	// "Missing required header for this request: x-amz-content-sha256".
	ErrMissingContentSHA256 = errors.New("missing x-amz-content-sha256")

	// ErrIncompleteBody reports a body shorter than Content-Length or than
	// x-amz-decoded-content-length. IncompleteBody.
	ErrIncompleteBody = errors.New("incomplete body")

	// ErrMissingDecodedLength reports an aws-chunked request without a valid
	// x-amz-decoded-content-length. MissingContentLength.
	ErrMissingDecodedLength = errors.New("missing x-amz-decoded-content-length")

	// ErrChunkEncoding reports an aws-chunked body that breaks the framing:
	// bad chunk header, missing CRLF, more data than declared, a malformed or
	// undeclared trailer line. InvalidRequest.
	ErrChunkEncoding = errors.New("malformed aws-chunked body")

	// ErrUnsupported reports a signing variant this package does not
	// implement, such as SigV4A (ECDSA). NotImplemented.
	ErrUnsupported = errors.New("unsupported signing variant")
)
