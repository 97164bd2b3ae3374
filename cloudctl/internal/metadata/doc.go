// Package metadata is the EC2 instance metadata service (IMDS) that guests
// reach at 169.254.169.254: an http.Handler that answers the paths, listings,
// status codes and IMDSv2 token exchange of Amazon's service closely enough
// that cloud-init, botocore and aws-sdk-go-v2's feature/ec2/imds work
// unchanged.
//
// The caller is identified only by the TCP source address of the request
// (http.Request.RemoteAddr); the network layer DNATs 169.254.169.254 to this
// handler and keeps the guest's source address, and the packet filter drops
// spoofed sources. The handler asks a [Lookup] which instance holds that
// address and serves only that instance's data. An unknown source gets EC2's
// 404 page, never another instance's data.
//
// IMDSv2 session tokens are stateless: a token is an HMAC, under
// [Config.TokenKey], over the instance ID, an expiry and a nonce. A token is
// therefore useless to another instance (another instance ID), after its
// TTL, and after the key changes. Cloud controllers that share a key accept
// each other's tokens.
//
// Layout of what is served (V is "latest" or any dated version in the root
// listing, all serving the same tree):
//
//	/                                  versions, one a line
//	/V/                                dynamic/ meta-data/ user-data
//	/V/meta-data/...                   see [Instance]
//	/V/user-data                       raw bytes, 404 when there are none
//	/V/dynamic/instance-identity/document
//	/latest/api/token                  PUT only
//
// A directory asked for without its trailing slash is redirected (301) to
// the slash form, as EC2 does; a leaf asked for with a trailing slash is
// served as the leaf (botocore asks for "placement/availability-zone/").
package metadata
