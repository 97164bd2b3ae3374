package bundle

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Style chooses whose conventions a created bundle follows. Both tools read
// both styles; the difference is in the part names and the manifest's
// serialisation.
type Style int

const (
	// StyleEuca2ools names parts NAME.part.00, NAME.part.01, ... and
	// writes the manifest as euca2ools 3 (lxml) does: an ASCII XML
	// declaration, double-quoted attributes, kernel_id and ramdisk_id
	// before block_device_mapping (mapping children device, virtual), and
	// kernel and ramdisk images marked with a kernel_id / ramdisk_id of
	// "true".
	StyleEuca2ools Style = iota
	// StyleEC2AMITools names parts NAME.part.0, NAME.part.1, ... and
	// writes the manifest as ec2-ami-tools (REXML) does: a bare XML
	// declaration, single-quoted attributes, block_device_mapping
	// (mapping children virtual, device) before kernel_id and ramdisk_id,
	// and a kernel_name element for kernel images.
	StyleEC2AMITools
)

// PartName returns the file name of part i of the bundle of an image named
// name.
func (s Style) PartName(name string, i int) string {
	if s == StyleEC2AMITools {
		return name + ".part." + strconv.Itoa(i)
	}
	return fmt.Sprintf("%s.part.%02d", name, i)
}

// styleOf returns the style of the tool that wrote m.
func styleOf(m *Manifest) Style {
	if m.Bundler.Name == "ec2-ami-tools" {
		return StyleEC2AMITools
	}
	return StyleEuca2ools
}

// encode serialises m in the given style. sign receives the exact text to
// sign and returns the raw signature. encode writes what the fields say; it
// leaves checks to its callers. It sets m.Signed and m.Signature.
func encode(m *Manifest, style Style, sign func(signed []byte) ([]byte, error)) ([]byte, error) {
	q := byte('"')
	if style == StyleEC2AMITools {
		q = '\''
	}

	mc := &xmlWriter{q: q}
	mc.open("machine_configuration")
	mc.leaf("architecture", m.Arch)
	kernel, ramdisk := m.KernelID, m.RamdiskID
	if style == StyleEuca2ools {
		switch m.Type {
		case TypeKernel:
			kernel = markerTrue
		case TypeRamdisk:
			ramdisk = markerTrue
		}
		mc.optLeaf("kernel_id", kernel)
		mc.optLeaf("ramdisk_id", ramdisk)
	}
	if len(m.BlockDeviceMappings) > 0 {
		mc.open("block_device_mapping")
		for _, mp := range m.BlockDeviceMappings {
			mc.open("mapping")
			if style == StyleEC2AMITools {
				mc.leaf("virtual", mp.Virtual)
				mc.leaf("device", mp.Device)
			} else {
				mc.leaf("device", mp.Device)
				mc.leaf("virtual", mp.Virtual)
			}
			mc.close("mapping")
		}
		mc.close("block_device_mapping")
	}
	if style == StyleEC2AMITools {
		mc.optLeaf("kernel_id", kernel)
		mc.optLeaf("ramdisk_id", ramdisk)
	}
	if len(m.ProductCodes) > 0 {
		mc.open("product_codes")
		for _, c := range m.ProductCodes {
			mc.leaf("product_code", c)
		}
		mc.close("product_codes")
	}
	mc.close("machine_configuration")

	img := &xmlWriter{q: q}
	img.open("image")
	img.leaf("name", m.Name)
	img.leaf("user", m.User)
	img.leaf("type", m.Type)
	if style == StyleEC2AMITools && m.Type == TypeKernel {
		img.leaf("kernel_name", m.Name)
	}
	img.leaf("digest", m.Digest, "algorithm", m.DigestAlgorithm)
	img.leaf("size", strconv.FormatInt(m.Size, 10))
	img.leaf("bundled_size", strconv.FormatInt(m.BundledSize, 10))
	img.leaf("ec2_encrypted_key", m.EC2EncryptedKey, "algorithm", cipherAES)
	if m.UserEncryptedKey != "" {
		img.leaf("user_encrypted_key", m.UserEncryptedKey, "algorithm", cipherAES)
	}
	img.leaf("ec2_encrypted_iv", m.EC2EncryptedIV)
	img.optLeaf("user_encrypted_iv", m.UserEncryptedIV)
	img.open("parts", "count", strconv.Itoa(len(m.Parts)))
	for _, p := range m.Parts {
		img.open("part", "index", strconv.Itoa(p.Index))
		img.leaf("filename", p.Filename)
		img.leaf("digest", p.SHA1, "algorithm", digestSHA1)
		img.close("part")
	}
	img.close("parts")
	img.close("image")

	signed := append(mc.b.Bytes(), img.b.Bytes()...)
	sig, err := sign(signed)
	if err != nil {
		return nil, err
	}

	doc := &xmlWriter{q: q}
	if style == StyleEC2AMITools {
		doc.b.WriteString("<?xml version='1.0'?>")
	} else {
		doc.b.WriteString("<?xml version='1.0' encoding='ASCII'?>\n")
	}
	doc.open("manifest")
	doc.leaf("version", ManifestVersion)
	if m.Bundler != (Bundler{}) {
		doc.open("bundler")
		doc.leaf("name", m.Bundler.Name)
		doc.leaf("version", m.Bundler.Version)
		doc.leaf("release", m.Bundler.Release)
		doc.close("bundler")
	}
	doc.b.Write(signed)
	doc.leaf("signature", hex.EncodeToString(sig))
	doc.close("manifest")

	m.Signed = signed
	m.Signature = sig
	return doc.b.Bytes(), nil
}

// xmlWriter writes the compact, ASCII-only XML the tools write.
type xmlWriter struct {
	b bytes.Buffer
	q byte // attribute quote
}

func (w *xmlWriter) open(name string, attrs ...string) {
	w.b.WriteByte('<')
	w.b.WriteString(name)
	for i := 0; i+1 < len(attrs); i += 2 {
		w.b.WriteByte(' ')
		w.b.WriteString(attrs[i])
		w.b.WriteByte('=')
		w.b.WriteByte(w.q)
		w.escape(attrs[i+1])
		w.b.WriteByte(w.q)
	}
	w.b.WriteByte('>')
}

func (w *xmlWriter) close(name string) {
	w.b.WriteString("</")
	w.b.WriteString(name)
	w.b.WriteByte('>')
}

func (w *xmlWriter) leaf(name, text string, attrs ...string) {
	w.open(name, attrs...)
	w.escape(text)
	w.close(name)
}

func (w *xmlWriter) optLeaf(name, text string) {
	if text != "" {
		w.leaf(name, text)
	}
}

// escape writes s as ASCII text or attribute value: markup characters,
// quotes, carriage returns and other control characters, and everything
// outside ASCII as references, as lxml does for an ASCII document.
func (w *xmlWriter) escape(s string) {
	for _, r := range s {
		switch {
		case r == '&':
			w.b.WriteString("&amp;")
		case r == '<':
			w.b.WriteString("&lt;")
		case r == '>':
			w.b.WriteString("&gt;")
		case r == rune(w.q) && r == '"':
			w.b.WriteString("&quot;")
		case r == rune(w.q) && r == '\'':
			w.b.WriteString("&apos;")
		case r == '\t' || r == '\n' || (r >= 0x20 && r < 0x7f):
			w.b.WriteByte(byte(r))
		case r == utf8.RuneError:
			w.b.WriteString("&#xFFFD;")
		default:
			fmt.Fprintf(&w.b, "&#x%X;", r)
		}
	}
}
