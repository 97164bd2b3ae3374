// Package sigv2 verifies and creates AWS Signature Version 2 signatures, the
// scheme older clients still use: the S3 REST form (Authorization "AWS
// AKID:signature" or the AWSAccessKeyId/Signature/Expires query of a
// presigned URL, HMAC-SHA1) spoken by euca2ools' bundle uploads, boto 2 and
// s3cmd --signature-v2, and the EC2 Query form (SignatureVersion=2 with
// HmacSHA256 or HmacSHA1) spoken by Amazon's ec2-api-tools.
//
// As in package sigv4, each step is a small pure function (string to sign,
// canonical resource, canonical query) and signatures are compared in
// constant time. Errors wrap the exported sentinel errors so the API edge can
// choose the AWS error code with errors.Is. ErrUnknownKey is the same value
// as sigv4.ErrUnknownKey, so one key store serves both packages.
//
// SigV2 does not cover the body: an S3 request's integrity rests on
// Content-MD5 (signed, but checked against the body by the storage layer),
// and an EC2 request's parameters, which are all signed, are its body.
package sigv2
