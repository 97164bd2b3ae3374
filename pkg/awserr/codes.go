package awserr

import "net/http"

type status struct {
	code    int
	message string
}

// codes is the table of every AWS error code the project answers with: the
// HTTP status AWS uses and AWS's default message.
var codes = map[string]status{
	// S3 (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
	"AccessDenied":                          {http.StatusForbidden, "Access Denied"},
	"AuthorizationHeaderMalformed":          {http.StatusBadRequest, "The authorization header is malformed."},
	"AuthorizationQueryParametersError":     {http.StatusBadRequest, "Error parsing the X-Amz-Credential parameter."},
	"BadDigest":                             {http.StatusBadRequest, "The Content-MD5 you specified did not match what we received."},
	"BucketAlreadyExists":                   {http.StatusConflict, "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."},
	"BucketAlreadyOwnedByYou":               {http.StatusConflict, "Your previous request to create the named bucket succeeded and you already own it."},
	"BucketNotEmpty":                        {http.StatusConflict, "The bucket you tried to delete is not empty"},
	"EntityTooLarge":                        {http.StatusBadRequest, "Your proposed upload exceeds the maximum allowed object size."},
	"EntityTooSmall":                        {http.StatusBadRequest, "Your proposed upload is smaller than the minimum allowed object size."},
	"IllegalLocationConstraintException":    {http.StatusBadRequest, "The specified location-constraint is not valid for this endpoint."},
	"IncompleteBody":                        {http.StatusBadRequest, "You did not provide the number of bytes specified by the Content-Length HTTP header."},
	"InternalError":                         {http.StatusInternalServerError, "We encountered an internal error. Please try again."},
	"InvalidAccessKeyId":                    {http.StatusForbidden, "The AWS Access Key Id you provided does not exist in our records."},
	"InvalidArgument":                       {http.StatusBadRequest, "Invalid Argument"},
	"InvalidBucketName":                     {http.StatusBadRequest, "The specified bucket is not valid."},
	"InvalidBucketState":                    {http.StatusConflict, "The request is not valid with the current state of the bucket."},
	"InvalidDigest":                         {http.StatusBadRequest, "The Content-MD5 you specified is not valid."},
	"InvalidLocationConstraint":             {http.StatusBadRequest, "The specified location constraint is not valid."},
	"InvalidObjectState":                    {http.StatusForbidden, "The operation is not valid for the current state of the object."},
	"InvalidPartNumber":                     {http.StatusRequestedRangeNotSatisfiable, "The requested partnumber is not satisfiable"},
	"InvalidURI":                            {http.StatusBadRequest, "Couldn't parse the specified URI."},
	"UnresolvableGrantByEmailAddress":       {http.StatusBadRequest, "The email address you provided does not match any account on record."},
	"ConditionalRequestConflict":            {http.StatusConflict, "A conflicting operation occurred. If using PutObject you can retry the request. If using multipart upload you should initiate another CreateMultipartUpload request and re-upload each part."},
	"AccessForbidden":                       {http.StatusForbidden, "CORSResponse: This CORS request is not allowed."},
	"BadRequest":                            {http.StatusBadRequest, "Bad Request"},
	"InvalidPart":                           {http.StatusBadRequest, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."},
	"InvalidPartOrder":                      {http.StatusBadRequest, "The list of parts was not in ascending order. Parts must be ordered by part number."},
	"InvalidRange":                          {http.StatusRequestedRangeNotSatisfiable, "The requested range is not satisfiable"},
	"InvalidRequest":                        {http.StatusBadRequest, "Invalid Request"},
	"InvalidStorageClass":                   {http.StatusBadRequest, "The storage class you specified is not valid"},
	"InvalidTag":                            {http.StatusBadRequest, "The tag provided was not a valid tag."},
	"KeyTooLongError":                       {http.StatusBadRequest, "Your key is too long"},
	"MalformedACLError":                     {http.StatusBadRequest, "The XML you provided was not well-formed or did not validate against our published schema"},
	"MalformedXML":                          {http.StatusBadRequest, "The XML you provided was not well-formed or did not validate against our published schema"},
	"MetadataTooLarge":                      {http.StatusBadRequest, "Your metadata headers exceed the maximum allowed metadata size."},
	"MethodNotAllowed":                      {http.StatusMethodNotAllowed, "The specified method is not allowed against this resource."},
	"MissingContentLength":                  {http.StatusLengthRequired, "You must provide the Content-Length HTTP header."},
	"MissingRequestBodyError":               {http.StatusBadRequest, "Request Body is empty"},
	"MissingSecurityHeader":                 {http.StatusBadRequest, "Your request is missing a required header."},
	"NoSuchBucket":                          {http.StatusNotFound, "The specified bucket does not exist"},
	"NoSuchBucketPolicy":                    {http.StatusNotFound, "The bucket policy does not exist"},
	"NoSuchCORSConfiguration":               {http.StatusNotFound, "The CORS configuration does not exist"},
	"NoSuchKey":                             {http.StatusNotFound, "The specified key does not exist."},
	"NoSuchLifecycleConfiguration":          {http.StatusNotFound, "The lifecycle configuration does not exist"},
	"NoSuchTagSet":                          {http.StatusNotFound, "The TagSet does not exist"},
	"NoSuchUpload":                          {http.StatusNotFound, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."},
	"NoSuchVersion":                         {http.StatusNotFound, "The specified version does not exist."},
	"NoSuchWebsiteConfiguration":            {http.StatusNotFound, "The specified bucket does not have a website configuration"},
	"NotImplemented":                        {http.StatusNotImplemented, "A header you provided implies functionality that is not implemented."},
	"NotModified":                           {http.StatusNotModified, "Not Modified"},
	"ObjectLockConfigurationNotFoundError":  {http.StatusNotFound, "Object Lock configuration does not exist for this bucket"},
	"OwnershipControlsNotFoundError":        {http.StatusNotFound, "The bucket ownership controls were not found"},
	"PreconditionFailed":                    {http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold"},
	"ReplicationConfigurationNotFoundError": {http.StatusNotFound, "The replication configuration was not found"},
	"RequestTimeTooSkewed":                  {http.StatusForbidden, "The difference between the request time and the current time is too large."},
	"RequestTimeout":                        {http.StatusBadRequest, "Your socket connection to the server was not read from or written to within the timeout period."},
	"ServerSideEncryptionConfigurationNotFoundError": {http.StatusNotFound, "The server side encryption configuration was not found"},
	"NoSuchPublicAccessBlockConfiguration":           {http.StatusNotFound, "The public access block configuration was not found"},
	"ServiceUnavailable":                             {http.StatusServiceUnavailable, "Please reduce your request rate."},
	"SignatureDoesNotMatch":                          {http.StatusForbidden, "The request signature we calculated does not match the signature you provided. Check your key and signing method."},
	"SlowDown":                                       {http.StatusServiceUnavailable, "Please reduce your request rate."},
	"TooManyBuckets":                                 {http.StatusBadRequest, "You have attempted to create more buckets than allowed"},
	"UnexpectedContent":                              {http.StatusBadRequest, "This request does not support content"},
	"XAmzContentSHA256Mismatch":                      {http.StatusBadRequest, "The provided 'x-amz-content-sha256' header does not match what was computed."},

	// EC2 (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html).
	"AuthFailure":                 {http.StatusUnauthorized, "AWS was not able to validate the provided access credentials"},
	"DependencyViolation":         {http.StatusBadRequest, "The resource has a dependent object."},
	"DryRunOperation":             {http.StatusPreconditionFailed, "Request would have succeeded, but DryRun flag is set."},
	"IdempotentParameterMismatch": {http.StatusBadRequest, "The client token you have provided is associated with a resource that is already deleted or was created with different parameters."},
	"IncorrectState":              {http.StatusBadRequest, "The resource is in an incorrect state for the request."},
	"InvalidAction":               {http.StatusBadRequest, "The action or operation requested is invalid."},
	"InvalidParameter":            {http.StatusBadRequest, "A parameter specified in a request is not valid."},
	"InvalidParameterCombination": {http.StatusBadRequest, "Indicates an incorrect combination of parameters, or a missing parameter."},
	"InvalidParameterValue":       {http.StatusBadRequest, "A value specified in a parameter is not valid."},
	"MissingParameter":            {http.StatusBadRequest, "The request must contain the parameter."},
	"RequestLimitExceeded":        {http.StatusServiceUnavailable, "Request limit exceeded."},
	"UnauthorizedOperation":       {http.StatusForbidden, "You are not authorized to perform this operation."},
	"UnknownParameter":            {http.StatusBadRequest, "An unknown or unrecognized parameter was supplied."},
	"Unavailable":                 {http.StatusServiceUnavailable, "The server is overloaded and can't handle the request."},
}

// Status returns the HTTP status AWS answers code with, and whether the
// code is known.
func Status(code string) (int, bool) {
	st, ok := codes[code]
	return st.code, ok
}
