// Package images keeps the cloud's registered images in cloudctl's
// database: machine (ami-), kernel (aki-) and ramdisk (ari-) images with
// their bundle location, state (pending until walrus has checked and
// cached the bundle, then available or failed with a reason), launch
// permissions, and the attributes DescribeImageAttribute shows.
package images
