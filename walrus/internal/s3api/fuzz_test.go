package s3api

import (
	"strings"
	"testing"
)

// FuzzRequestDocuments feeds arbitrary bytes to every request document
// walrus parses: none may panic, and each either decodes or is refused
// with an S3 error.
func FuzzRequestDocuments(f *testing.F) {
	for _, s := range []string{
		complete(1, `"abc"`, 2, `"def"`),
		`<Delete><Quiet>true</Quiet><Object><Key>a</Key><VersionId>null</VersionId></Object></Delete>`,
		`<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>`,
		`<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>`,
		``, `<`, `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		var c completeRequest
		var d deleteRequest
		var g tagging
		for _, v := range []any{&c, &d, &g} {
			if err := readXML(strings.NewReader(doc), v); err != nil {
				if _, ok := err.(interface{ Error() string }); !ok {
					t.Fatalf("odd error %v", err)
				}
			}
		}
		_ = checkTags(g.Tags)
	})
}

func FuzzRange(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=-5", "bytes=3-", "bytes=1-0", "bytes=0-1,3-4", "bytes=99999999999999999999-"} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, v string, size int64) {
		if size < 0 {
			return
		}
		r, ok, err := parseRange(v, size)
		if err != nil || !ok {
			return
		}
		if r.start < 0 || r.length <= 0 || r.start+r.length > size {
			t.Fatalf("range %q of %d gave %+v", v, size, r)
		}
	})
}
