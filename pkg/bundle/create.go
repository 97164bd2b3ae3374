package bundle

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
	"unicode/utf8"
)

// PartSink stores a bundle's parts by file name. Create closes every writer
// it gets and checks the error of Close.
type PartSink interface {
	Create(ctx context.Context, filename string) (io.WriteCloser, error)
}

// PartRemover is an optional ability of a PartSink: when Create fails after
// it has written parts, it removes them through Remove.
type PartRemover interface {
	Remove(ctx context.Context, filename string) error
}

// DefaultPartSize is the part size of both tools, 10 MiB.
const DefaultPartSize = 10 << 20

// tarRecord is the tar record size GNU tar and Python's tarfile pad to.
const tarRecord = 20 * 512

// CreateOptions describe the bundle Create makes.
type CreateOptions struct {
	// Name is the image's file name: the tar member's name, the manifest's
	// image name and the stem of the part names. It must be a plain file
	// name.
	Name string
	// User is the owner's 12-digit account ID.
	User string
	// Arch is the architecture (i386, x86_64, armhf, ...).
	Arch string
	// Type is TypeMachine (the default), TypeKernel or TypeRamdisk.
	Type string
	// KernelID and RamdiskID are the default kernel and ramdisk of a
	// machine image.
	KernelID, RamdiskID string
	// Mappings are a machine image's default block device mappings.
	Mappings []Mapping
	// ProductCodes are a machine image's product codes.
	ProductCodes []string
	// Size is the image's length in bytes. If zero, Create finds it by
	// seeking when the reader is an io.Seeker (an *os.File, for one).
	// The tar header needs it before the data.
	Size int64
	// PartSize is the size of each part but the last; DefaultPartSize if
	// zero.
	PartSize int64
	// Style picks part names and manifest layout; StyleEuca2ools if zero.
	Style Style
	// Bundler names the tool in the manifest; {koala 1.0 0} if zero.
	Bundler Bundler

	// UserCert and UserKey are the user's certificate and its private
	// key: the manifest is signed with UserKey and the AES key and IV
	// are encrypted for UserCert.
	UserCert *x509.Certificate
	UserKey  *rsa.PrivateKey
	// CloudCert is the cloud's certificate, for which the AES key and IV
	// are encrypted too.
	CloudCert *x509.Certificate
}

// Create bundles the image read from r: it tars it (GNU format, one member
// named opts.Name, mode 0644, owner 0:0, time 0), gzips, encrypts with a new
// random AES-128-CBC key and IV, splits the result into parts of
// opts.PartSize written through sink, and returns the manifest document,
// signed with the user's key, with the key and IV encrypted for the cloud's
// and the user's certificates. Memory stays bounded whatever the image size.
//
// r must yield exactly opts.Size bytes. On failure Create removes the parts
// it wrote if sink is a PartRemover.
func Create(ctx context.Context, r io.Reader, opts CreateOptions, sink PartSink) (manifest []byte, err error) {
	o, err := checkOptions(r, opts)
	if err != nil {
		return nil, err
	}
	key := make([]byte, aes.BlockSize)
	iv := make([]byte, aes.BlockSize)
	_, _ = rand.Read(key)
	_, _ = rand.Read(iv)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}

	parts := &partWriter{ctx: ctx, sink: sink, name: o.Name, style: o.Style, size: o.PartSize}
	defer func() {
		if err != nil {
			parts.abort()
		}
	}()
	enc := newCBCWriter(parts, cipher.NewCBCEncrypter(block, iv))
	gz, err := gzip.NewWriterLevel(enc, gzip.DefaultCompression)
	if err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	gz.Header.OS = 3 // Unix, as gzip(1) writes
	tarred := &countWriter{w: gz, h: sha1.New()}
	tw := tar.NewWriter(tarred)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     o.Name,
		Mode:     0o644,
		Size:     o.Size,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatGNU,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("create bundle: tar header: %w", err)
	}
	buf := make([]byte, 256<<10)
	if _, err := io.CopyBuffer(tw, &ctxReader{ctx: ctx, r: io.LimitReader(r, o.Size)}, buf); err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	if err := tw.Flush(); err != nil {
		// Short input: the tar writer wants the rest of the member.
		return nil, fmt.Errorf("create bundle: image shorter than %d bytes: %w", o.Size, err)
	}
	if n, _ := io.ReadFull(r, buf[:1]); n != 0 {
		return nil, fmt.Errorf("create bundle: image longer than %d bytes", o.Size)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	if pad := (tarRecord - tarred.n%tarRecord) % tarRecord; pad > 0 {
		if _, err := tarred.Write(make([]byte, pad)); err != nil {
			return nil, fmt.Errorf("create bundle: %w", err)
		}
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	if err := parts.Close(); err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}

	m := &Manifest{
		Bundler:             o.Bundler,
		Name:                o.Name,
		User:                o.User,
		Type:                o.Type,
		Arch:                o.Arch,
		KernelID:            o.KernelID,
		RamdiskID:           o.RamdiskID,
		BlockDeviceMappings: o.Mappings,
		ProductCodes:        o.ProductCodes,
		Digest:              hex.EncodeToString(tarred.h.Sum(nil)),
		DigestAlgorithm:     digestSHA1,
		Size:                o.Size,
		BundledSize:         parts.total,
		Parts:               parts.parts,
	}
	cloudPub := o.CloudCert.PublicKey.(*rsa.PublicKey)
	userPub := o.UserCert.PublicKey.(*rsa.PublicKey)
	for _, f := range []struct {
		dst   *string
		pub   *rsa.PublicKey
		value []byte
	}{
		{&m.EC2EncryptedKey, cloudPub, key},
		{&m.UserEncryptedKey, userPub, key},
		{&m.EC2EncryptedIV, cloudPub, iv},
		{&m.UserEncryptedIV, userPub, iv},
	} {
		//lint:ignore SA1019 the bundle format encrypts the key with PKCS#1 v1.5.
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, f.pub, []byte(hex.EncodeToString(f.value)))
		if err != nil {
			return nil, fmt.Errorf("create bundle: encrypt key: %w", err)
		}
		*f.dst = hex.EncodeToString(ct)
	}
	doc, err := encode(m, o.Style, func(signed []byte) ([]byte, error) {
		sum := sha1.Sum(signed)
		return rsa.SignPKCS1v15(nil, o.UserKey, crypto.SHA1, sum[:])
	})
	if err != nil {
		return nil, fmt.Errorf("create bundle: sign manifest: %w", err)
	}
	if len(doc) > MaxManifestSize {
		return nil, fmt.Errorf("create bundle: manifest of %d parts is over %d bytes; use larger parts", len(m.Parts), MaxManifestSize)
	}
	return doc, nil
}

// checkOptions validates opts and fills in defaults.
func checkOptions(r io.Reader, o CreateOptions) (CreateOptions, error) {
	bad := func(format string, args ...any) (CreateOptions, error) {
		return o, fmt.Errorf("create bundle: "+format, args...)
	}
	if o.Type == "" {
		o.Type = TypeMachine
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.Bundler == (Bundler{}) {
		o.Bundler = Bundler{Name: "koala", Version: "1.0", Release: "0"}
	}
	if o.Size == 0 {
		if s, ok := r.(io.Seeker); ok {
			cur, err1 := s.Seek(0, io.SeekCurrent)
			end, err2 := s.Seek(0, io.SeekEnd)
			_, err3 := s.Seek(cur, io.SeekStart)
			if err := errors.Join(err1, err2, err3); err != nil {
				return bad("find image size: %w", err)
			}
			o.Size = end - cur
		}
	}
	switch {
	case !validText(o.Name) || !validFileName(o.Name) || !validFileName(o.Style.PartName(o.Name, 0)):
		return bad("image name %q is not a plain file name", o.Name)
	case !isAccountID(o.User):
		return bad("user %q is not a 12-digit account id", o.User)
	case !validText(o.Arch):
		return bad("architecture %q is empty or not plain text", o.Arch)
	case o.Type != TypeMachine && o.Type != TypeKernel && o.Type != TypeRamdisk:
		return bad("image type %q is not machine, kernel or ramdisk", o.Type)
	case o.Type != TypeMachine && (o.KernelID != "" || o.RamdiskID != "" || len(o.Mappings) > 0 || len(o.ProductCodes) > 0):
		return bad("kernel, ramdisk, mappings and product codes are for machine images only")
	case o.KernelID == markerTrue || o.RamdiskID == markerTrue:
		return bad("kernel and ramdisk ids cannot be %q; set Type instead", markerTrue)
	case o.KernelID != "" && !validText(o.KernelID), o.RamdiskID != "" && !validText(o.RamdiskID):
		return bad("kernel or ramdisk id is not plain text")
	case o.Size <= 0:
		return bad("image size %d: set CreateOptions.Size", o.Size)
	case o.PartSize < 0:
		return bad("part size %d", o.PartSize)
	case o.Style != StyleEuca2ools && o.Style != StyleEC2AMITools:
		return bad("unknown style %d", o.Style)
	case o.UserCert == nil || o.UserKey == nil || o.CloudCert == nil:
		return bad("UserCert, UserKey and CloudCert are required")
	}
	for _, mp := range o.Mappings {
		if !validText(mp.Virtual) || !validText(mp.Device) {
			return bad("block device mapping %q=%q is not plain text", mp.Virtual, mp.Device)
		}
	}
	for _, c := range o.ProductCodes {
		if !validText(c) {
			return bad("product code %q is not plain text", c)
		}
	}
	for _, s := range []string{o.Bundler.Name, o.Bundler.Version, o.Bundler.Release} {
		if s != "" && !validText(s) {
			return bad("bundler %q is not plain text", s)
		}
	}
	userPub, ok := o.UserCert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return bad("user certificate key is not RSA")
	}
	if _, ok := o.CloudCert.PublicKey.(*rsa.PublicKey); !ok {
		return bad("cloud certificate key is not RSA")
	}
	if !userPub.Equal(o.UserKey.Public()) {
		return bad("user key does not match the user certificate")
	}
	return o, nil
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validText reports whether s is non-empty UTF-8 without control
// characters or surrounding spaces, so that it survives the manifest.
func validText(s string) bool {
	if s == "" || !utf8.ValidString(s) || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// countWriter hashes and counts what goes through it.
type countWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// partWriter splits what it is given into parts of size bytes.
type partWriter struct {
	ctx     context.Context
	sink    PartSink
	name    string
	style   Style
	size    int64
	cur     io.WriteCloser
	h       hash.Hash
	n       int64 // bytes in the current part
	total   int64
	parts   []Part
	created []string
}

func (w *partWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if err := w.ctx.Err(); err != nil {
			return written, err
		}
		if w.cur == nil {
			if len(w.parts) >= maxParts {
				return written, fmt.Errorf("more than %d parts; use larger parts", maxParts)
			}
			name := w.style.PartName(w.name, len(w.parts))
			wc, err := w.sink.Create(w.ctx, name)
			if err != nil {
				return written, fmt.Errorf("create part %s: %w", name, err)
			}
			w.created = append(w.created, name)
			w.cur, w.n = wc, 0
			if w.h == nil {
				w.h = sha1.New()
			}
			w.h.Reset()
		}
		k := int(min(int64(len(p)), w.size-w.n))
		n, err := w.cur.Write(p[:k])
		w.h.Write(p[:n])
		w.n += int64(n)
		w.total += int64(n)
		written += n
		p = p[n:]
		if err != nil {
			return written, fmt.Errorf("write part %s: %w", w.created[len(w.created)-1], err)
		}
		if w.n == w.size {
			if err := w.endPart(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (w *partWriter) endPart() error {
	name := w.created[len(w.created)-1]
	err := w.cur.Close()
	w.cur = nil
	if err != nil {
		return fmt.Errorf("close part %s: %w", name, err)
	}
	w.parts = append(w.parts, Part{Index: len(w.parts), Filename: name, SHA1: hex.EncodeToString(w.h.Sum(nil))})
	return nil
}

// Close ends the last part.
func (w *partWriter) Close() error {
	if w.cur == nil {
		return nil
	}
	return w.endPart()
}

// abort closes and, where the sink allows, removes the parts written.
func (w *partWriter) abort() {
	if w.cur != nil {
		w.cur.Close()
		w.cur = nil
	}
	rm, ok := w.sink.(PartRemover)
	if !ok {
		return
	}
	ctx := context.WithoutCancel(w.ctx)
	for _, name := range w.created {
		_ = rm.Remove(ctx, name)
	}
}

// cbcWriter encrypts with AES-CBC as it writes and pads the last block
// (PKCS#7) on Close.
type cbcWriter struct {
	w    io.Writer
	mode cipher.BlockMode
	buf  []byte
	n    int // bytes in buf
}

func newCBCWriter(w io.Writer, mode cipher.BlockMode) *cbcWriter {
	return &cbcWriter{w: w, mode: mode, buf: make([]byte, 64<<10)}
}

func (c *cbcWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := copy(c.buf[c.n:], p)
		c.n += k
		p = p[k:]
		written += k
		if c.n == len(c.buf) {
			if err := c.flush(c.n); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// flush encrypts and writes the first n bytes of buf, a whole number of
// blocks, and moves the rest to the front.
func (c *cbcWriter) flush(n int) error {
	c.mode.CryptBlocks(c.buf[:n], c.buf[:n])
	if _, err := c.w.Write(c.buf[:n]); err != nil {
		return err
	}
	c.n = copy(c.buf, c.buf[n:c.n])
	return nil
}

// Close pads and writes the last block. It does not close the underlying
// writer.
func (c *cbcWriter) Close() error {
	bs := c.mode.BlockSize()
	pad := bs - c.n%bs
	for i := 0; i < pad; i++ {
		c.buf[c.n+i] = byte(pad)
	}
	c.n += pad
	return c.flush(c.n)
}
