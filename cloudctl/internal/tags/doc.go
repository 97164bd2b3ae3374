// Package tags keeps the tags of every tagged resource of an account, in
// cloudctl's database, with EC2's limits: 50 tags a resource, keys up to
// 128 and values up to 256 characters, the aws: prefix reserved.
package tags
