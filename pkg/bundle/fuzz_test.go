package bundle

import (
	"bytes"
	"context"
	"reflect"
	"testing"
)

// FuzzParseManifest feeds ParseManifest arbitrary documents. Whatever it
// accepts must survive a round trip: serialised again (in the style of its
// bundler, with its own signature) and parsed, it gives the same fields,
// and serialising that gives the same bytes.
func FuzzParseManifest(f *testing.F) {
	for _, fx := range fixtures {
		f.Add(fx.manifest(f))
	}
	// Manifests with the optional elements, from Create.
	for _, edit := range []func(*CreateOptions){
		func(o *CreateOptions) {
			o.KernelID, o.RamdiskID = "eki-1", "eri-2"
			o.Mappings = []Mapping{{"ami", "sda1"}, {"root", "/dev/sda1"}}
			o.ProductCodes = []string{"ABC"}
		},
		func(o *CreateOptions) { o.Type = TypeKernel },
		func(o *CreateOptions) {
			o.Type = TypeRamdisk
			o.Style = StyleEC2AMITools
		},
		func(o *CreateOptions) {
			o.Style = StyleEC2AMITools
			o.Mappings = []Mapping{{"swap", "sda3"}}
		},
	} {
		image := randomBytes(20, 3000)
		opts := createOpts(f, "fuzz.img", int64(len(image)))
		opts.PartSize = 1024
		edit(&opts)
		doc, err := Create(context.Background(), bytes.NewReader(image), opts, newMemStore())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		if len(m.Parts) == 0 || len(m.Signature) == 0 || len(m.Signed) == 0 {
			t.Fatalf("accepted without parts or signature: %+v", m)
		}
		style := styleOf(m)
		sig := m.Signature
		again := func(m *Manifest) []byte {
			c := *m
			doc, err := encode(&c, style, func([]byte) ([]byte, error) { return sig, nil })
			if err != nil {
				t.Fatal(err)
			}
			return doc
		}
		doc := again(m)
		if len(doc) > MaxManifestSize {
			return
		}
		m2, err := ParseManifest(doc)
		if err != nil {
			t.Fatalf("re-encoded manifest does not parse: %v\n%s", err, doc)
		}
		a, b := *m, *m2
		a.Signed, b.Signed = nil, nil
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the manifest:\n%+v\n%+v", a, b)
		}
		if doc2 := again(m2); !bytes.Equal(doc, doc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", doc, doc2)
		}
	})
}
