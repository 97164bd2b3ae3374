// Package bundle reads and writes AMI bundles, the upload format of Amazon's
// ec2-ami-tools (ec2-bundle-image) and of euca2ools (euca-bundle-image).
//
// A bundle is an image file tarred as a single member named after the image,
// gzipped, encrypted with AES-128-CBC under a random key and IV (PKCS#7
// padding, as "openssl enc -aes-128-cbc" writes it) and split into parts:
// NAME.part.0, NAME.part.1, ... from ec2-ami-tools and NAME.part.00,
// NAME.part.01, ... from euca2ools. A manifest, NAME.manifest.xml, describes
// it:
//
//	<manifest>
//	  <version>2007-10-10</version>
//	  <bundler><name/><version/><release/></bundler>
//	  <machine_configuration>
//	    <architecture/> [<kernel_id/>] [<ramdisk_id/>]
//	    [<block_device_mapping><mapping><virtual/><device/></mapping>...</block_device_mapping>]
//	    [<product_codes><product_code/>...</product_codes>]
//	  </machine_configuration>
//	  <image>
//	    <name/> <user/> <type/> <digest algorithm="SHA1"/> <size/> <bundled_size/>
//	    <ec2_encrypted_key algorithm="AES-128-CBC"/> <user_encrypted_key algorithm="AES-128-CBC"/>
//	    <ec2_encrypted_iv/> <user_encrypted_iv/>
//	    <parts count="N"><part index="0"><filename/><digest algorithm="SHA1"/></part>...</parts>
//	  </image>
//	  <signature/>
//	</manifest>
//
// The image digest is the SHA-1 of the tar stream (the gunzipped data, tar
// headers and end-of-archive padding included), not of the image file: that
// is what both tool chains compute, and why the two tools' digests of the
// same image differ (ec2-ami-tools tars with GNU sparse members and a real
// modification time). size is the image file's length and bundled_size the
// total length of the encrypted parts. The AES key and IV are written as
// 32 hexadecimal characters and that text is RSA-encrypted (PKCS#1 v1.5),
// once for the cloud's certificate (ec2_*) and once for the user's (user_*);
// the elements hold the ciphertext in hex. The signature is the hex RSA-SHA1
// (PKCS#1 v1.5) signature, by the user's private key, of the exact text of
// the <machine_configuration> element followed by the exact text of the
// <image> element as they appear in the file. euca2ools marks kernel and
// ramdisk images with a kernel_id or ramdisk_id of "true"; ParseManifest
// turns that marker into Manifest.Type.
//
// ParseManifest keeps the signed bytes, Verify checks them against the
// user's certificate, Keys recovers the AES key and IV with the cloud's
// private key, and Open streams the image out of the parts, checking every
// part's digest and then the image digest. Create does the reverse. Both
// directions stream: memory stays near a megabyte (mostly the gzip
// compressor) for any image size.
//
// Every failure wraps one of the package's sentinel errors (ErrMalformedManifest,
// ErrBadSignature, ErrKeyDecrypt, ErrPartDigest, ErrImageDigest,
// ErrMissingPart) so that the API edge can map it to an AWS error code with
// errors.Is; the messages follow the "sentinel: detail" form.
package bundle
