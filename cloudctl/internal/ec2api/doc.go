// Package ec2api is cloudctl's EC2 Query API front end: it authenticates
// requests (SigV4, and SigV2 as ec2-api-tools and boto 2 send it), parses
// their parameters with pkg/ec2query, runs the actions over cloudctl's
// stores, and maps domain errors to EC2's codes in one table (errors.go).
//
// Every action reads its parameters, then calls request.ready, which
// refuses unknown parameters and stops a DryRun, before it changes
// anything.
package ec2api
