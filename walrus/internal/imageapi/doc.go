// Package imageapi is walrus's part of the image path, under
// /internal/v1/: it hands cloudctl a bundle's manifest for RegisterImage
// (if the registering account may read it), checks and caches a
// registered bundle's decrypted image, and serves cached images to nodes
// with Range support. Every call is SigV4-signed with a component key;
// the bundle's AES key comes from cloudctl, which alone holds the cloud's
// private key.
package imageapi
