package bundle

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestCreateRoundTrip(t *testing.T) {
	big := randomBytes(1, 25<<20)
	cases := []struct {
		name      string
		image     []byte
		edit      func(*CreateOptions)
		wantParts int // 0: at least 2
	}{
		{name: "euca2ools 25MiB 1MiB parts", image: big, edit: func(o *CreateOptions) { o.PartSize = 1 << 20 }},
		{name: "ec2-ami-tools 25MiB 1MiB parts", image: big, edit: func(o *CreateOptions) {
			o.PartSize = 1 << 20
			o.Style = StyleEC2AMITools
		}},
		{name: "default part size", image: randomBytes(2, 3<<20), wantParts: 1},
		{name: "one byte", image: []byte{42}, wantParts: 1},
		{name: "tiny parts", image: randomBytes(3, 5000), edit: func(o *CreateOptions) { o.PartSize = 1000 }},
		{name: "machine with kernel ramdisk mappings", image: randomBytes(4, 100<<10), wantParts: 1, edit: func(o *CreateOptions) {
			o.KernelID, o.RamdiskID = "eki-12345678", "eri-87654321"
			o.Mappings = []Mapping{{"ami", "sda1"}, {"root", "/dev/sda1"}, {"ephemeral0", "sda2"}, {"swap", "sda3"}}
			o.ProductCodes = []string{"774F4FF8"}
		}},
		{name: "ec2 machine with mappings", image: randomBytes(5, 100<<10), wantParts: 1, edit: func(o *CreateOptions) {
			o.Style = StyleEC2AMITools
			o.KernelID = "aki-12345678"
			o.Mappings = []Mapping{{"ami", "sda1"}, {"root", "/dev/sda1"}}
		}},
		{name: "euca2ools kernel", image: randomBytes(6, 10<<10), wantParts: 1, edit: func(o *CreateOptions) { o.Type = TypeKernel }},
		{name: "euca2ools ramdisk", image: randomBytes(7, 10<<10), wantParts: 1, edit: func(o *CreateOptions) { o.Type = TypeRamdisk }},
		{name: "ec2 kernel", image: randomBytes(8, 10<<10), wantParts: 1, edit: func(o *CreateOptions) {
			o.Type = TypeKernel
			o.Style = StyleEC2AMITools
		}},
		{name: "zeros compress", image: make([]byte, 8<<20), wantParts: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := createOpts(t, "img-"+strings.ReplaceAll(tc.name, " ", "_")+".raw", int64(len(tc.image)))
			if tc.edit != nil {
				tc.edit(&opts)
			}
			store := newMemStore()
			doc, err := Create(context.Background(), bytes.NewReader(tc.image), opts, store)
			if err != nil {
				t.Fatal(err)
			}
			got, m, err := openAll(t, doc, store)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.image) {
				t.Fatalf("image differs: %d bytes, want %d", len(got), len(tc.image))
			}

			typ := opts.Type
			if typ == "" {
				typ = TypeMachine
			}
			if m.Name != opts.Name || m.User != opts.User || m.Arch != opts.Arch || m.Type != typ ||
				m.KernelID != opts.KernelID || m.RamdiskID != opts.RamdiskID ||
				!slices.Equal(m.BlockDeviceMappings, opts.Mappings) || !slices.Equal(m.ProductCodes, opts.ProductCodes) ||
				m.Size != int64(len(tc.image)) {
				t.Errorf("manifest fields %+v do not match options %+v", m, opts)
			}
			var bundled int64
			for i, p := range m.Parts {
				if want := opts.Style.PartName(opts.Name, i); p.Filename != want {
					t.Errorf("part %d is %s, want %s", i, p.Filename, want)
				}
				bundled += int64(len(store.files[p.Filename]))
				if i < len(m.Parts)-1 && opts.PartSize > 0 && int64(len(store.files[p.Filename])) != opts.PartSize {
					t.Errorf("part %d has %d bytes, want %d", i, len(store.files[p.Filename]), opts.PartSize)
				}
			}
			if bundled != m.BundledSize || bundled%16 != 0 {
				t.Errorf("bundled_size %d, parts hold %d", m.BundledSize, bundled)
			}
			if len(store.files) != len(m.Parts) {
				t.Errorf("store holds %v, manifest lists %d parts", store.names(), len(m.Parts))
			}
			if tc.wantParts > 0 && len(m.Parts) != tc.wantParts || tc.wantParts == 0 && len(m.Parts) < 2 {
				t.Errorf("%d parts", len(m.Parts))
			}
			k := loadKeys(t)
			ukey, uiv, err := m.UserKeys(plainDecrypter(k.userKey))
			if err != nil {
				t.Fatal(err)
			}
			ckey, civ, err := m.Keys(plainDecrypter(k.cloudKey))
			if err != nil || !bytes.Equal(ukey, ckey) || !bytes.Equal(uiv, civ) {
				t.Fatalf("user and cloud keys differ or fail: %v", err)
			}
			if !bytes.Equal(m.Signed, toolsSignedText(doc)) {
				t.Error("signed text differs from what the tools would cut out")
			}
		})
	}
}

// TestCreateStructureMatchesFixtures compares the manifests Create writes
// with the tools': same element paths and attributes in the same order,
// and, with the text left out, the same bytes.
func TestCreateStructureMatchesFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.dir, func(t *testing.T) {
			fixtureDoc := f.manifest(t)
			want, err := ParseManifest(fixtureDoc)
			if err != nil {
				t.Fatal(err)
			}
			opts := createOpts(t, "disk.img", 0)
			opts.Style = f.style
			opts.PartSize = 64 << 10
			// An image that compresses to as many parts as the fixture.
			image := randomBytes(9, int(opts.PartSize)*(len(f.parts)-1)+1000)
			opts.Size = int64(len(image))
			doc, err := Create(context.Background(), bytes.NewReader(image), opts, newMemStore())
			if err != nil {
				t.Fatal(err)
			}
			m, err := ParseManifest(doc)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Parts) != len(want.Parts) {
				t.Fatalf("%d parts, fixture has %d", len(m.Parts), len(want.Parts))
			}
			if got, want := elementPaths(t, doc), elementPaths(t, fixtureDoc); !slices.Equal(got, want) {
				t.Errorf("element paths differ:\n got %q\nwant %q", got, want)
			}
			if got, want := skeleton(doc), skeleton(fixtureDoc); got != want {
				t.Errorf("layout differs:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// elementPaths lists every element as its path with its attribute names.
func elementPaths(t *testing.T, doc []byte) []string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.CharsetReader = charsetReader
	var stack, out []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			stack = append(stack, e.Name.Local)
			p := strings.Join(stack, "/")
			for _, a := range e.Attr {
				p += " @" + a.Name.Local
			}
			out = append(out, p)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
}

var textRE = regexp.MustCompile(`>[^<]+<`)

// skeleton is the document with element text removed.
func skeleton(doc []byte) string {
	return textRE.ReplaceAllString(string(doc), "><")
}

func TestCreateErrors(t *testing.T) {
	k := loadKeys(t)
	image := randomBytes(10, 4096)
	cases := []struct {
		name  string
		edit  func(*CreateOptions)
		input io.Reader
	}{
		{name: "no name", edit: func(o *CreateOptions) { o.Name = "" }},
		{name: "name with slash", edit: func(o *CreateOptions) { o.Name = "a/b" }},
		{name: "dot dot", edit: func(o *CreateOptions) { o.Name = ".." }},
		{name: "short account", edit: func(o *CreateOptions) { o.User = "12345" }},
		{name: "letters in account", edit: func(o *CreateOptions) { o.User = "12345678901a" }},
		{name: "no arch", edit: func(o *CreateOptions) { o.Arch = "" }},
		{name: "bad type", edit: func(o *CreateOptions) { o.Type = "disk" }},
		{name: "kernel with mappings", edit: func(o *CreateOptions) {
			o.Type = TypeKernel
			o.Mappings = []Mapping{{"ami", "sda1"}}
		}},
		{name: "true marker as id", edit: func(o *CreateOptions) { o.KernelID = "true" }},
		{name: "no user key", edit: func(o *CreateOptions) { o.UserKey = nil }},
		{name: "no cloud cert", edit: func(o *CreateOptions) { o.CloudCert = nil }},
		{name: "key not of cert", edit: func(o *CreateOptions) { o.UserKey = k.cloudKey }},
		{name: "negative part size", edit: func(o *CreateOptions) { o.PartSize = -1 }},
		{name: "no size, no seeker", edit: func(o *CreateOptions) { o.Size = 0 }, input: io.MultiReader(bytes.NewReader(image))},
		{name: "short input", edit: func(o *CreateOptions) { o.Size = int64(len(image)) + 1 }},
		{name: "long input", edit: func(o *CreateOptions) { o.Size = int64(len(image)) - 1 }},
		{name: "too many parts for a manifest", edit: func(o *CreateOptions) {
			o.PartSize = 16
			o.Size = 300000
		}, input: bytes.NewReader(randomBytes(10, 300000))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := createOpts(t, "x.img", int64(len(image)))
			opts.PartSize = 1024
			tc.edit(&opts)
			in := tc.input
			if in == nil {
				in = bytes.NewReader(image)
			}
			store := newMemStore()
			doc, err := Create(context.Background(), in, opts, store)
			if err == nil {
				t.Fatalf("no error; manifest %d bytes", len(doc))
			}
			if names := store.names(); len(names) != 0 {
				t.Errorf("parts left behind: %v", names)
			}
			t.Log(err)
		})
	}
}

func TestCreateSizeFromSeeker(t *testing.T) {
	image := randomBytes(11, 70000)
	f, err := os.CreateTemp(t.TempDir(), "img")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(image); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	opts := createOpts(t, "seek.img", 0)
	dir := Dir(t.TempDir())
	doc, err := Create(context.Background(), f, opts, dir)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := openAll(t, doc, dir)
	if err != nil || !bytes.Equal(got, image) {
		t.Fatalf("round trip through Dir: %v", err)
	}
}

func TestCreateCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	store := newMemStore()
	_, err := Create(ctx, newGenReader(1, 4<<20), createOpts(t, "c.img", 4<<20), store)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := store.names(); len(n) != 0 {
		t.Errorf("parts left behind: %v", n)
	}
}

// TestCreateOpenSSL checks Create's output with the tools the bundlers
// themselves run: openssl for the RSA key decryption, the AES decryption
// and the signature, gunzip and tar for the rest.
func TestCreateOpenSSL(t *testing.T) {
	for _, tool := range []string{"openssl", "gzip", "tar", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	for _, style := range []Style{StyleEuca2ools, StyleEC2AMITools} {
		t.Run(fmt.Sprint("style", int(style)), func(t *testing.T) {
			dir := t.TempDir()
			image := randomBytes(12, 3<<20+12345)
			opts := createOpts(t, "osl.img", int64(len(image)))
			opts.Style = style
			opts.PartSize = 1 << 20
			doc, err := Create(context.Background(), bytes.NewReader(image), opts, Dir(dir))
			if err != nil {
				t.Fatal(err)
			}
			m, err := ParseManifest(doc)
			if err != nil {
				t.Fatal(err)
			}
			write := func(name string, data []byte) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, data, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			run := func(script string) []byte {
				t.Helper()
				cmd := exec.Command("sh", "-ec", script)
				cmd.Dir = dir
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("%s: %v\n%s", script, err, stderr.Bytes())
				}
				return out
			}
			hexBin := func(h string) []byte {
				b, err := hex.DecodeString(h)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			cloudPK, _ := filepath.Abs(filepath.Join(fixtureDir, "keys", "cloud-pk.pem"))
			userCert, _ := filepath.Abs(filepath.Join(fixtureDir, "keys", "user-cert.pem"))
			write("key.enc", hexBin(m.EC2EncryptedKey))
			write("iv.enc", hexBin(m.EC2EncryptedIV))
			keyHex := string(run("openssl pkeyutl -decrypt -inkey " + cloudPK + " -pkeyopt rsa_padding_mode:pkcs1 -in key.enc"))
			ivHex := string(run("openssl pkeyutl -decrypt -inkey " + cloudPK + " -pkeyopt rsa_padding_mode:pkcs1 -in iv.enc"))
			if len(keyHex) != 32 || len(ivHex) != 32 {
				t.Fatalf("openssl decrypted key %q iv %q", keyHex, ivHex)
			}
			var parts []string
			for _, p := range m.Parts {
				parts = append(parts, p.Filename)
			}
			decrypt := "cat " + strings.Join(parts, " ") + " | openssl enc -d -aes-128-cbc -K " + keyHex + " -iv " + ivHex
			if got := run(decrypt + " | gzip -dc | tar -xOf -"); !bytes.Equal(got, image) {
				t.Errorf("openssl | gunzip | tar -xO gives %d bytes, want the %d-byte image", len(got), len(image))
			}
			if got := strings.TrimSpace(string(run(decrypt + " | gzip -dc | openssl dgst -sha1 -r"))); !strings.HasPrefix(got, m.Digest+" ") {
				t.Errorf("sha1 of the tar stream %q, manifest says %s", got, m.Digest)
			}
			if got := string(run(decrypt + " | gzip -dc | tar -tvf -")); !strings.Contains(got, "osl.img") || !strings.Contains(got, fmt.Sprint(len(image))) {
				t.Errorf("tar listing %q", got)
			}
			write("signed.txt", toolsSignedText(doc))
			write("sig.bin", m.Signature)
			run("openssl x509 -in " + userCert + " -pubkey -noout > user.pub")
			if got := string(run("openssl dgst -sha1 -verify user.pub -signature sig.bin signed.txt")); !strings.Contains(got, "Verified OK") {
				t.Errorf("openssl signature check: %q", got)
			}
		})
	}
}
