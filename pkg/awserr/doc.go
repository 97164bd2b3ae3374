// Package awserr is the one place that knows AWS error codes and the HTTP
// statuses that go with them.
//
// Domain packages return their own sentinel errors. Each API edge maps them
// to an *Error once, with a table of Rules (see From), and writes the result
// in the wire shape of its protocol: WriteS3 for S3's <Error> document and
// WriteEC2 for the EC2 Query API's <Response><Errors> document.
package awserr
