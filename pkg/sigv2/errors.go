package sigv2

import (
	"errors"

	"github.com/koala-cloud/koala/pkg/sigv4"
)

// Sentinel errors, wrapped with details by the verifiers. The comment on
// each names the AWS error code the API edge is expected to answer with.
var (
	// ErrMalformed reports an Authorization header or query that cannot be
	// parsed: a missing field, a missing or unparseable date, both
	// Timestamp and Expires. S3: AccessDenied / InvalidArgument; EC2:
	// MissingParameter or InvalidParameterValue.
	ErrMalformed = errors.New("malformed sigv2 authorization")

	// ErrUnknownKey reports an access key ID the key store does not know.
	// It is sigv4.ErrUnknownKey. InvalidAccessKeyId (S3), AuthFailure (EC2).
	ErrUnknownKey = sigv4.ErrUnknownKey

	// ErrSignature reports a signature that does not match.
	// SignatureDoesNotMatch.
	ErrSignature = errors.New("signature does not match")

	// ErrExpired reports a presigned S3 URL past its Expires, or an EC2
	// request past its Expires parameter. AccessDenied "Request has
	// expired" (S3), RequestExpired (EC2).
	ErrExpired = errors.New("request has expired")

	// ErrSkewed reports a request whose Date, x-amz-date or Timestamp is
	// outside the allowed clock skew. RequestTimeTooSkewed (S3),
	// RequestExpired (EC2).
	ErrSkewed = errors.New("request time too skewed")

	// ErrUnsupported reports a SignatureVersion other than 2 or a
	// SignatureMethod other than HmacSHA256 and HmacSHA1. EC2:
	// InvalidParameterValue.
	ErrUnsupported = errors.New("unsupported signature version or method")
)
