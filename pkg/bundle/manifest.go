package bundle

import (
	"bytes"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ManifestVersion is the only manifest version this package reads and writes.
const ManifestVersion = "2007-10-10"

// MaxManifestSize is the largest manifest ParseManifest accepts, in bytes.
const MaxManifestSize = 1 << 20

// Image types, the values of Manifest.Type.
const (
	TypeMachine = "machine"
	TypeKernel  = "kernel"
	TypeRamdisk = "ramdisk"
)

// markerTrue is euca2ools' kernel_id / ramdisk_id value for kernel and
// ramdisk images.
const markerTrue = "true"

const (
	digestSHA1 = "SHA1"
	cipherAES  = "AES-128-CBC"

	maxDepth = 16     // elements nested deeper than this are refused
	maxNodes = 50_000 // about 16,000 parts
	maxParts = 15_000
)

// Manifest is a parsed bundle manifest. Text fields hold the element text
// with surrounding white space removed; hex fields are as written in the
// XML.
type Manifest struct {
	// Bundler names the tool that made the bundle.
	Bundler Bundler

	// Name is the image's file name, also the name of the tar member.
	Name string
	// User is the owner's account ID.
	User string
	// Type is TypeMachine, TypeKernel or TypeRamdisk.
	Type string
	// Arch is the architecture: i386, x86_64, armhf, ...
	Arch string
	// KernelID and RamdiskID are the default kernel and ramdisk of a
	// machine image, if any.
	KernelID, RamdiskID string
	// BlockDeviceMappings are the machine image's default mappings in
	// document order.
	BlockDeviceMappings []Mapping
	// ProductCodes are the machine image's product codes.
	ProductCodes []string

	// Digest is the hex SHA-1 of the tar stream that holds the image.
	Digest string
	// DigestAlgorithm is the digest element's algorithm attribute ("SHA1").
	DigestAlgorithm string
	// Size is the length of the image file in bytes.
	Size int64
	// BundledSize is the total length of the encrypted parts in bytes.
	BundledSize int64

	// EC2EncryptedKey and EC2EncryptedIV are the hex RSA ciphertexts of
	// the AES key and IV for the cloud's certificate.
	EC2EncryptedKey, EC2EncryptedIV string
	// UserEncryptedKey and UserEncryptedIV are the same for the user's
	// certificate. They may be empty.
	UserEncryptedKey, UserEncryptedIV string

	// Parts lists the parts in index order.
	Parts []Part

	// Signature is the decoded signature.
	Signature []byte
	// Signed is the exact text that was signed: the raw
	// <machine_configuration> element followed by the raw <image> element.
	Signed []byte
}

// Bundler is the manifest's bundler element.
type Bundler struct {
	Name, Version, Release string
}

// Mapping is one block device mapping: Virtual is a name such as "ami",
// "root", "swap" or "ephemeral0", Device a device such as "sda1".
type Mapping struct {
	Virtual, Device string
}

// Part is one part of the bundle.
type Part struct {
	// Index is the part's position, from 0.
	Index int
	// Filename is the part's file name, a name without any directory.
	Filename string
	// SHA1 is the hex SHA-1 of the part's bytes.
	SHA1 string
}

// ParseManifest parses a manifest document. It keeps the raw signed text in
// Signed but does not check the signature (see Verify). It refuses documents
// over MaxManifestSize, manifests of other versions, repeated elements,
// unsafe part file names and anything else out of shape, with an error
// wrapping ErrMalformedManifest.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformedManifest, len(data), MaxManifestSize)
	}
	root, err := parseTree(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedManifest, err)
	}
	p := &parser{}
	m := p.manifest(root, data)
	if p.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedManifest, p.err)
	}
	return m, nil
}

// parser collects the first error while fields are read from the tree, so
// that the extraction code reads straight through.
type parser struct {
	err error
}

func (p *parser) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf(format, args...)
	}
}

func (p *parser) manifest(root *node, data []byte) *Manifest {
	if root.name != "manifest" {
		p.fail("root element is <%s>, not <manifest>", root.name)
		return nil
	}
	m := &Manifest{}
	if v := p.text(root, "version", true); p.err == nil && v != ManifestVersion {
		p.fail("manifest version %q, only %s is supported", v, ManifestVersion)
	}
	if b := p.opt(root, "bundler"); b != nil {
		m.Bundler.Name = p.text(b, "name", false)
		m.Bundler.Version = p.text(b, "version", false)
		m.Bundler.Release = p.text(b, "release", false)
	}

	mc := p.one(root, "machine_configuration")
	img := p.one(root, "image")
	sig := p.one(root, "signature")
	if p.err != nil {
		return nil
	}
	m.Signed = slices.Concat(data[mc.start:mc.end], data[img.start:img.end])
	if !bytes.HasPrefix(m.Signed, []byte("<machine_configuration")) || !bytes.HasSuffix(m.Signed, []byte(">")) {
		p.fail("cannot find the signed text")
	}
	m.Signature = p.hex(sig, "signature", 0)

	p.machineConfiguration(m, mc)
	p.image(m, img)
	p.imageType(m)
	if p.err != nil {
		return nil
	}
	return m
}

func (p *parser) machineConfiguration(m *Manifest, mc *node) {
	m.Arch = p.text(mc, "architecture", true)
	m.KernelID = p.text(mc, "kernel_id", false)
	m.RamdiskID = p.text(mc, "ramdisk_id", false)
	if bdm := p.opt(mc, "block_device_mapping"); bdm != nil {
		for _, mp := range bdm.kids("mapping") {
			m.BlockDeviceMappings = append(m.BlockDeviceMappings, Mapping{
				Virtual: p.text(mp, "virtual", true),
				Device:  p.text(mp, "device", true),
			})
		}
	}
	if pc := p.opt(mc, "product_codes"); pc != nil {
		for _, c := range pc.kids("product_code") {
			code := c.str()
			if code == "" {
				p.fail("empty <product_code>")
			}
			m.ProductCodes = append(m.ProductCodes, code)
		}
	}
}

func (p *parser) image(m *Manifest, img *node) {
	m.Name = p.text(img, "name", true)
	m.User = p.text(img, "user", true)
	m.Type = p.text(img, "type", true)

	if d := p.one(img, "digest"); d != nil {
		m.DigestAlgorithm, _ = d.attr("algorithm")
		if !strings.EqualFold(m.DigestAlgorithm, digestSHA1) {
			p.fail("image digest algorithm %q, only SHA1 is supported", m.DigestAlgorithm)
		}
		m.Digest = d.str()
		p.hex(d, "image digest", 20)
	}
	m.Size = p.size(img, "size")
	m.BundledSize = p.size(img, "bundled_size")

	m.EC2EncryptedKey = p.encrypted(img, "ec2_encrypted_key", true)
	m.EC2EncryptedIV = p.encrypted(img, "ec2_encrypted_iv", true)
	m.UserEncryptedKey = p.encrypted(img, "user_encrypted_key", false)
	m.UserEncryptedIV = p.encrypted(img, "user_encrypted_iv", false)

	parts := p.one(img, "parts")
	if parts == nil {
		return
	}
	countText, _ := parts.attr("count")
	count, err := strconv.Atoi(countText)
	if err != nil || count < 1 || count > maxParts {
		p.fail("<parts count=%q> is not a number from 1 to %d", countText, maxParts)
		return
	}
	kids := parts.kids("part")
	if len(kids) != count {
		p.fail("<parts count=\"%d\"> holds %d <part> elements", count, len(kids))
		return
	}
	m.Parts = make([]Part, count)
	seen := make([]bool, count)
	names := make(map[string]bool, count)
	for _, k := range kids {
		idxText, _ := k.attr("index")
		idx, err := strconv.Atoi(idxText)
		if err != nil || idx < 0 || idx >= count || seen[idx] {
			p.fail("<part index=%q> is not a distinct number below %d", idxText, count)
			return
		}
		seen[idx] = true
		name := p.text(k, "filename", true)
		if p.err == nil && !validFileName(name) {
			p.fail("part %d file name %q is not a plain file name", idx, name)
		}
		if names[name] {
			p.fail("part file name %q repeated", name)
		}
		names[name] = true
		d := p.one(k, "digest")
		if d == nil {
			return
		}
		if alg, ok := d.attr("algorithm"); ok && !strings.EqualFold(alg, digestSHA1) {
			p.fail("part %d digest algorithm %q, only SHA1 is supported", idx, alg)
		}
		p.hex(d, "part digest", 20)
		m.Parts[idx] = Part{Index: idx, Filename: name, SHA1: d.str()}
	}
}

// imageType checks the type and turns euca2ools' "true" markers into it.
func (p *parser) imageType(m *Manifest) {
	if p.err != nil {
		return
	}
	switch {
	case m.KernelID == markerTrue && m.RamdiskID == markerTrue:
		p.fail("both kernel_id and ramdisk_id are %q", markerTrue)
	case m.KernelID == markerTrue:
		if m.Type != TypeMachine && m.Type != TypeKernel {
			p.fail("kernel_id %q on a %s image", markerTrue, m.Type)
		}
		m.Type, m.KernelID = TypeKernel, ""
	case m.RamdiskID == markerTrue:
		if m.Type != TypeMachine && m.Type != TypeRamdisk {
			p.fail("ramdisk_id %q on a %s image", markerTrue, m.Type)
		}
		m.Type, m.RamdiskID = TypeRamdisk, ""
	}
	switch m.Type {
	case TypeMachine:
	case TypeKernel, TypeRamdisk:
		if m.KernelID != "" || m.RamdiskID != "" {
			p.fail("a %s image names a kernel or ramdisk", m.Type)
		}
	default:
		p.fail("image type %q is not machine, kernel or ramdisk", m.Type)
	}
}

// one returns the only child named name; it fails when there is none or more.
func (p *parser) one(n *node, name string) *node {
	k := n.kids(name)
	if len(k) != 1 {
		p.fail("<%s> has %d <%s> elements, want 1", n.name, len(k), name)
		return nil
	}
	return k[0]
}

// opt returns the child named name or nil; it fails when there are more.
func (p *parser) opt(n *node, name string) *node {
	k := n.kids(name)
	if len(k) > 1 {
		p.fail("<%s> has %d <%s> elements, want at most 1", n.name, len(k), name)
		return nil
	}
	if len(k) == 0 {
		return nil
	}
	return k[0]
}

// text returns the text of the child named name; a required child must
// exist and be non-empty.
func (p *parser) text(n *node, name string, required bool) string {
	var c *node
	if required {
		c = p.one(n, name)
	} else {
		c = p.opt(n, name)
	}
	if c == nil {
		return ""
	}
	s := c.str()
	if required && s == "" && p.err == nil {
		p.fail("<%s> is empty", name)
	}
	return s
}

// hex decodes n's text, which must be non-empty hex of want bytes (any
// length when want is 0).
func (p *parser) hex(n *node, what string, want int) []byte {
	if n == nil {
		return nil
	}
	b, err := hex.DecodeString(n.str())
	switch {
	case err != nil || len(b) == 0:
		p.fail("%s is not hex", what)
	case want > 0 && len(b) != want:
		p.fail("%s has %d bytes, want %d", what, len(b), want)
	}
	return b
}

func (p *parser) size(n *node, name string) int64 {
	s := p.text(n, name, true)
	if p.err != nil {
		return 0
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		p.fail("<%s> %q is not a size", name, s)
	}
	return v
}

// encrypted reads an ec2_/user_encrypted_key or _iv element.
func (p *parser) encrypted(img *node, name string, required bool) string {
	var c *node
	if required {
		c = p.one(img, name)
	} else {
		c = p.opt(img, name)
	}
	if c == nil {
		return ""
	}
	if alg, ok := c.attr("algorithm"); ok && !strings.EqualFold(alg, cipherAES) {
		p.fail("<%s> algorithm %q, only %s is supported", name, alg, cipherAES)
	}
	p.hex(c, name, 0)
	return c.str()
}

// validFileName reports whether s can name a part: a plain name without
// directories that every PartSource can use as is.
func validFileName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return false
		}
	}
	return true
}

// node is an element of a parsed document, with its byte range in the input.
type node struct {
	name       string
	attrs      []xml.Attr
	text       []byte
	children   []*node
	start, end int64
}

func (n *node) kids(name string) []*node {
	var out []*node
	for _, c := range n.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

func (n *node) attr(name string) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

// str returns the element's text without surrounding XML white space.
func (n *node) str() string {
	return string(bytes.Trim(n.text, xmlSpace))
}

const xmlSpace = " \t\r\n"

// parseTree parses data into a tree of elements, recording where each
// element starts and ends so that the signed text is cut from the very
// elements whose values are used (a comment or second copy elsewhere cannot
// stand in for them).
func parseTree(data []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	d.CharsetReader = charsetReader
	var (
		root  *node
		stack []*node
		count int
	)
	for {
		start := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != "" {
				return nil, fmt.Errorf("element <%s:%s> has a namespace", t.Name.Space, t.Name.Local)
			}
			if root != nil && len(stack) == 0 {
				return nil, errors.New("more than one root element")
			}
			if len(stack) >= maxDepth {
				return nil, errors.New("elements nested too deep")
			}
			if count++; count > maxNodes {
				return nil, errors.New("too many elements")
			}
			n := &node{name: t.Name.Local, attrs: t.Copy().Attr, start: start}
			if len(stack) == 0 {
				root = n
			} else {
				top := stack[len(stack)-1]
				top.children = append(top.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			n := stack[len(stack)-1]
			n.end = d.InputOffset()
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.Trim(t, xmlSpace)) != 0 {
					return nil, errors.New("text outside the root element")
				}
				continue
			}
			if !utf8.Valid(t) {
				return nil, errors.New("text is not valid UTF-8")
			}
			top := stack[len(stack)-1]
			top.text = append(top.text, t...)
		case xml.Directive:
			return nil, errors.New("doctype and other directives are not allowed")
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	if len(stack) != 0 {
		return nil, io.ErrUnexpectedEOF
	}
	return root, nil
}

// charsetReader accepts the encodings the tools declare (euca2ools writes
// encoding='ASCII'). It passes bytes through unchanged so that decoder
// offsets stay offsets into the raw document.
func charsetReader(label string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "ascii", "us-ascii":
		return &asciiReader{r: r}, nil
	case "utf8":
		return r, nil
	}
	return nil, fmt.Errorf("unsupported encoding %q", label)
}

type asciiReader struct{ r io.Reader }

func (a *asciiReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	for _, c := range p[:n] {
		if c >= 0x80 {
			return 0, errors.New("non-ASCII byte in a document declared ASCII")
		}
	}
	return n, err
}
