//go:build e2e

// Package e2e is the end-to-end suite: it builds the walrus binary,
// starts it on free ports with fresh data directories, and drives it with
// the S3 clients people actually use — the aws CLI, s3cmd, boto 2, boto3,
// aws-sdk-go-v2 and minio-go — checking every byte that goes in comes out.
// It also checks account isolation and that a walrus killed with SIGKILL in
// the middle of uploads restarts with every acknowledged object intact and
// no torn one.
//
// For cloudctl it does the same with the EC2 clients: the aws CLI, boto 2
// (SigV4 with its odd scope), boto3 with its waiters and paginators,
// aws-sdk-go-v2, and SigV2 requests built byte for byte as Amazon's
// ec2-api-tools send them; it checks isolation between accounts, key
// revocation, and cloudctl and walrus running together as make run starts
// them.
//
// Run it with
//
//	go test -tags e2e -count=1 ./test/e2e/
//
// The external clients are Debian's, at fixed paths (scripts/install-deps.sh
// installs them). A test whose client is missing is skipped, or fails when
// CI=true.
package e2e
