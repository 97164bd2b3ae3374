package s3api

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/koala-cloud/koala/pkg/awserr"
)

// TestEveryCodeIsKnown guards against a code missing from awserr's table,
// which would answer it with 500.
func TestEveryCodeIsKnown(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`awserr\.Newf?\("([A-Za-z]+)"|Code: +"([A-Za-z]+)"`)
	seen := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			code := m[1] + m[2]
			seen++
			if _, ok := awserr.Status(code); !ok {
				t.Errorf("%s: code %s is not in awserr's table", f, code)
			}
		}
	}
	if seen < 50 {
		t.Fatalf("found only %d codes; is the pattern stale?", seen)
	}
}
