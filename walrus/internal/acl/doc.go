// Package acl models S3 access control lists: owners, grants, canned ACLs,
// the x-amz-grant-* headers and the AccessControlPolicy XML document, and
// decides whether an identity holds a permission.
package acl
