// Package tools is the user side of image bundles: the verbs cloudctl
// offers in place of euca2ools' and ec2-ami-tools' bundling commands.
//
//	bundle-image     image file -> encrypted parts and a signed manifest in a directory
//	upload-bundle    directory -> bucket (parts first, manifest last, ACL aws-exec-read)
//	register         RegisterImage of an uploaded manifest
//	download-bundle  bucket -> directory, checking each part's SHA-1
//	unbundle         directory -> image file, decrypted with the user's key
//	delete-bundle    removes a bundle's parts and manifest (and the bucket)
//	install-image    bundle straight into the bucket, register, wait until available
//
// Each works against any S3 and EC2 endpoint: the S3 calls go through
// aws-sdk-go-v2 with path-style or virtual-host addressing, the EC2 calls
// too, except DescribeCloudCertificate, an extension of this cloud that
// hands out the certificate bundles are encrypted for.
//
// install-image streams: bundle.Create writes its parts to a PartSink whose
// parts are buffered in memory and uploaded while the next ones are made,
// with a fixed number of buffers, so memory stays near a few parts whatever
// the image size and no temporary disk is used. If registration fails, what
// was uploaded is removed again.
//
// Run parses a verb's flags; settings not given as flags come from the
// environment an eucarc sets up (EC2_URL, S3_URL, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, EC2_CERT, EC2_PRIVATE_KEY,
// EUCALYPTUS_CERT, EC2_ACCOUNT_NUMBER), looked up through the function
// cloudctl's main passes in. Progress goes to stderr as plain lines; the
// result (a path, a location, an image ID) goes to stdout.
package tools
