// Package s3api is walrus's S3 REST front end: addressing (path style,
// virtual-host style, the legacy /services/Walrus prefix), authentication
// (SigV4 and SigV2, header and presigned, streaming payloads), ACL checks,
// the S3 operations over objstore, and S3's error documents.
//
// Domain errors become S3 codes in one table (errors.go); handlers return
// errors and never write an error response themselves.
package s3api
