// Package ec2query is the shared machinery of the EC2 Query API: reading a
// request's parameters, paginating Describe results and writing responses,
// each the way Amazon EC2 does it.
//
// A handler's life, in order:
//
//  1. Parse reads the parameters: the URL query of a GET, the form body of
//     a POST together with its URL query. Limits and malformed input are
//     reported with sentinel errors (ErrBodyTooLarge, ErrMalformed,
//     ErrContentType, ErrMethod) for the API edge to map to AWS codes.
//  2. NewParams wraps them. Its accessors read and validate one parameter
//     each (String, Has, Required, Int, Bool), lists in EC2's "X.N" form
//     (List), lists of structures "X.N.Field" with any nesting (Structs),
//     and Filter.N.Name / Filter.N.Value.M (Filters). Every name read is
//     remembered; after the action has read what it knows, Unknown answers
//     UnknownParameter for whatever the client sent besides, as EC2 does.
//     Validation failures are *awserr.Error values with EC2's codes and, as
//     far as they are known, its wording: MissingParameter "The request
//     must contain the parameter NAME", InvalidParameterValue "Value ( X )
//     for parameter NAME is invalid. ...", UnknownParameter "The parameter
//     NAME is not recognized".
//  3. Match evaluates filter values with EC2's wildcards (*, ? and \
//     escapes), and Tokens with Fingerprint and Page implement MaxResults
//     and NextToken over a sorted list of IDs, with tamper-evident tokens
//     bound to the request's filters.
//  4. Write encodes the result struct with encoding/xml into
//     <ACTIONResponse xmlns="http://ec2.amazonaws.com/doc/VERSION/"> with
//     the request ID first, in the namespace of the version the client
//     asked for. Time gives EC2's timestamp layout.
//
// Errors themselves are written by awserr.WriteEC2.
package ec2query
