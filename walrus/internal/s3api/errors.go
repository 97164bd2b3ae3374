package s3api

import (
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/sigv2"
	"github.com/koala-cloud/koala/pkg/sigv4"
	"github.com/koala-cloud/koala/walrus/internal/acl"
	"github.com/koala-cloud/koala/walrus/internal/objstore"
)

// rules maps domain errors to S3 codes. Errors a handler builds with
// awserr.New pass through unchanged.
var rules = []awserr.Rule{
	{Err: objstore.ErrNoSuchBucket, Code: "NoSuchBucket"},
	{Err: objstore.ErrBucketExists, Code: "BucketAlreadyExists"},
	{Err: objstore.ErrBucketOwned, Code: "BucketAlreadyOwnedByYou"},
	{Err: objstore.ErrBucketNotEmpty, Code: "BucketNotEmpty"},
	{Err: objstore.ErrTooManyBuckets, Code: "TooManyBuckets"},
	{Err: objstore.ErrNoSuchKey, Code: "NoSuchKey"},
	{Err: objstore.ErrNoSuchUpload, Code: "NoSuchUpload"},
	{Err: objstore.ErrIncompleteBody, Code: "IncompleteBody"},
	{Err: objstore.ErrTooLarge, Code: "IncompleteBody", Message: "The request body is longer than its declared length."},
	{Err: objstore.ErrInvalidPart, Code: "InvalidPart"},
	{Err: objstore.ErrInvalidPartOrder, Code: "InvalidPartOrder"},
	{Err: objstore.ErrEntityTooSmall, Code: "EntityTooSmall"},

	{Err: acl.ErrBadCanned, Code: "InvalidArgument", Detail: true},
	{Err: acl.ErrMalformed, Code: "MalformedACLError"},
	{Err: acl.ErrBadGrantHeader, Code: "InvalidArgument", Detail: true},
	{Err: acl.ErrUnknownGrantee, Code: "InvalidArgument", Message: "Invalid id"},
	{Err: acl.ErrUnresolvable, Code: "UnresolvableGrantByEmailAddress", Message: "The e-mail address you provided does not match any account on record."},
	{Err: acl.ErrCannedAndGrants, Code: "InvalidRequest", Message: "Specifying both Canned ACLs and Header Grants is not allowed"},
	{Err: acl.ErrOwnerMismatch, Code: "AccessDenied", Message: "Access Denied"},

	{Err: sigv4.ErrUnknownKey, Code: "InvalidAccessKeyId"},
	{Err: sigv4.ErrSignature, Code: "SignatureDoesNotMatch"},
	{Err: sigv4.ErrExpired, Code: "AccessDenied", Message: "Request has expired"},
	{Err: sigv4.ErrNotYetValid, Code: "AccessDenied", Message: "Request is not valid yet"},
	{Err: sigv4.ErrSkewed, Code: "RequestTimeTooSkewed"},
	{Err: sigv4.ErrContentSHA256, Code: "XAmzContentSHA256Mismatch"},
	{Err: sigv4.ErrIncompleteBody, Code: "IncompleteBody"},
	{Err: sigv4.ErrMissingDecodedLength, Code: "MissingContentLength"},
	{Err: sigv4.ErrMissingContentSHA256, Code: "InvalidRequest", Message: "Missing required header for this request: x-amz-content-sha256"},
	{Err: sigv4.ErrChunkEncoding, Code: "InvalidRequest", Detail: true},
	{Err: sigv4.ErrUnsupported, Code: "NotImplemented", Detail: true},

	{Err: sigv2.ErrUnknownKey, Code: "InvalidAccessKeyId"},
	{Err: sigv2.ErrSignature, Code: "SignatureDoesNotMatch"},
	{Err: sigv2.ErrExpired, Code: "AccessDenied", Message: "Request has expired"},
	{Err: sigv2.ErrSkewed, Code: "RequestTimeTooSkewed"},
	{Err: sigv2.ErrMalformed, Code: "InvalidArgument", Detail: true},
}
