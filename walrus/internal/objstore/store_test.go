package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/koala-cloud/koala/walrus/internal/acl"
)

var owner = acl.Owner{ID: "owner-id", DisplayName: "owner"}

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newStore opens a store in a temporary directory with one bucket, and
// checks its invariants when the test ends.
func newStore(t *testing.T) *Store {
	t.Helper()
	s := open(t, t.TempDir())
	t.Cleanup(func() {
		if err := s.Check(); err != nil {
			t.Errorf("consistency check: %v", err)
		}
		s.Close()
	})
	if err := s.CreateBucket(context.Background(), Bucket{Name: "b", Owner: owner}, 0); err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t *testing.T, s *Store, key, data string) Object {
	t.Helper()
	o, err := s.Put(context.Background(), PutInput{Bucket: "b", Key: key, Body: strings.NewReader(data), Size: int64(len(data)), Owner: owner})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return o
}

func get(t *testing.T, s *Store, key string) string {
	t.Helper()
	r, err := s.Open(context.Background(), "b", key, nil)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	defer r.Close()
	var buf bytes.Buffer
	if _, err := r.WriteRange(&buf, 0, r.Size); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestPutGetOverwriteDelete(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	o := put(t, s, "a/../b", "hello")
	if o.ETag != md5hex("hello") || o.Size != 5 {
		t.Fatalf("got %+v", o)
	}
	if got := get(t, s, "a/../b"); got != "hello" {
		t.Fatalf("got %q", got)
	}
	put(t, s, "a/../b", "bye")
	if got := get(t, s, "a/../b"); got != "bye" {
		t.Fatalf("after overwrite got %q", got)
	}
	if found, err := s.Delete(ctx, "b", "a/../b", nil); err != nil || !found {
		t.Fatalf("delete: %v %v", found, err)
	}
	if _, err := s.Head(ctx, "b", "a/../b"); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("head after delete: %v", err)
	}
	if found, err := s.Delete(ctx, "b", "a/../b", nil); err != nil || found {
		t.Fatalf("second delete: %v %v", found, err)
	}
}

func TestPutFailuresLeaveNothing(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	bad := errors.New("bad body")
	cases := []struct {
		name string
		in   PutInput
		want error
	}{
		{"short body", PutInput{Body: strings.NewReader("abc"), Size: 5}, ErrIncompleteBody},
		{"long body", PutInput{Body: strings.NewReader("abcdef"), Size: 5}, ErrTooLarge},
		{"reader error at EOF", PutInput{Body: io.MultiReader(strings.NewReader("abc"), errReader{bad}), Size: 3}, bad},
		{"verify refuses", PutInput{Body: strings.NewReader("abc"), Size: 3, Verify: func(*Object) error { return bad }}, bad},
		{"no bucket", PutInput{Bucket: "nope", Body: strings.NewReader("abc"), Size: 3}, ErrNoSuchBucket},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if in.Bucket == "" {
				in.Bucket = "b"
			}
			in.Key = "k"
			if _, err := s.Put(ctx, in); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if _, err := s.Head(ctx, "b", "k"); !errors.Is(err, ErrNoSuchKey) {
				t.Fatalf("object visible after failed put: %v", err)
			}
			if n := countFiles(t, filepath.Join(s.files.root, "tmp")); n != 0 {
				t.Fatalf("%d files left in tmp", n)
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReaderKeepsOldDataAcrossOverwrite(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	put(t, s, "k", "old data")
	r, err := s.Open(ctx, "b", "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", "new data!")
	if _, err := s.Delete(ctx, "b", "k", nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := r.WriteRange(&buf, 0, r.Size); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if buf.String() != "old data" {
		t.Fatalf("reader saw %q", buf.String())
	}
}

func TestConcurrentOverwritesAndReads(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	put(t, s, "k", strings.Repeat("0", 1000))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				data := strings.Repeat(fmt.Sprint((w+i)%10), 1000)
				if _, err := s.Put(ctx, PutInput{Bucket: "b", Key: "k", Body: strings.NewReader(data), Size: 1000, Owner: owner}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				r, err := s.Open(ctx, "b", "k", nil)
				if err != nil {
					t.Error(err)
					return
				}
				var buf bytes.Buffer
				_, err = r.WriteRange(&buf, 0, r.Size)
				r.Close()
				if err != nil {
					t.Error(err)
					return
				}
				if got := buf.String(); got != strings.Repeat(got[:1], 1000) || md5hex(got) != r.ETag {
					t.Errorf("torn read: %q... etag %s", got[:10], r.ETag)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestRecoveryAfterCrash(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "b", Owner: owner}, 0); err != nil {
		t.Fatal(err)
	}
	// Data files only for objects over the inline limit.
	large := func(s string) string { return s + strings.Repeat(".", inlineMax) }
	put(t, s, "kept", large("kept data"))
	// A write that never committed: its file sits in tmp.
	id, fh, err := s.files.create()
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString("half")
	fh.Close()
	// A write that committed but crashed before its rename.
	o := put(t, s, "committed", large("committed data"))
	if err := os.Rename(s.files.dataPath(o.Chunks[0].ID), s.files.tmpPath(o.Chunks[0].ID)); err != nil {
		t.Fatal(err)
	}
	// An overwrite whose old file was released but not yet unlinked.
	old := put(t, s, "over", large("v1"))
	s.files.mu.Lock()
	s.files.pins[old.Chunks[0].ID] = 1 // keeps release from unlinking it
	s.files.mu.Unlock()
	put(t, s, "over", large("v2"))
	s.Close()

	s = open(t, dir)
	defer s.Close()
	if _, err := os.Stat(s.files.tmpPath(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("uncommitted file survived recovery: %v", err)
	}
	for key, want := range map[string]string{"kept": large("kept data"), "committed": large("committed data"), "over": large("v2")} {
		if got := get(t, s, key); got != want {
			t.Errorf("%s: got %.20q... want %.20q...", key, got, want)
		}
	}
	if _, err := os.Stat(s.files.dataPath(old.Chunks[0].ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("released file survived recovery: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestList(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, k := range []string{"a/1", "a/2", "a/b/3", "b", "c/1", "c/2", "d"} {
		put(t, s, k, k)
	}
	cases := []struct {
		name     string
		in       ListInput
		keys     string
		prefixes string
		trunc    bool
	}{
		{"all", ListInput{Max: 1000}, "a/1 a/2 a/b/3 b c/1 c/2 d", "", false},
		{"delimiter", ListInput{Delimiter: "/", Max: 1000}, "b d", "a/ c/", false},
		{"prefix+delimiter", ListInput{Prefix: "a/", Delimiter: "/", Max: 1000}, "a/1 a/2", "a/b/", false},
		{"max counts prefixes", ListInput{Delimiter: "/", Max: 2}, "b", "a/", true},
		{"after a common prefix", ListInput{Delimiter: "/", After: "a/", Max: 2}, "b", "c/", true},
		{"after inside a common prefix", ListInput{Delimiter: "/", After: "a/1", Max: 10}, "b d", "c/", false},
		{"after a key", ListInput{After: "c/1", Max: 10}, "c/2 d", "", false},
		{"prefix with no match", ListInput{Prefix: "zz", Max: 10}, "", "", false},
		{"max zero", ListInput{Max: 0}, "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.List(ctx, "b", tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, o := range res.Objects {
				keys = append(keys, o.Key)
			}
			if got := strings.Join(keys, " "); got != tc.keys {
				t.Errorf("keys %q, want %q", got, tc.keys)
			}
			if got := strings.Join(res.Prefixes, " "); got != tc.prefixes {
				t.Errorf("prefixes %q, want %q", got, tc.prefixes)
			}
			if res.Truncated != tc.trunc {
				t.Errorf("truncated %v, want %v", res.Truncated, tc.trunc)
			}
		})
	}
}

func TestMultipart(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	u, err := s.CreateUpload(ctx, Upload{Bucket: "b", Key: "big", Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	partData := []string{"part-one-", "part-two-", "three"}
	var etags []string
	for i, d := range partData {
		p, err := s.PutPart(ctx, PartInput{Bucket: "b", Key: "big", UploadID: u.ID, Number: i + 1, Body: strings.NewReader(d), Size: int64(len(d))})
		if err != nil {
			t.Fatal(err)
		}
		etags = append(etags, p.ETag)
	}
	// Re-upload part 2: the first copy is released.
	if _, err := s.PutPart(ctx, PartInput{Bucket: "b", Key: "big", UploadID: u.ID, Number: 2, Body: strings.NewReader("part-two-"), Size: 9}); err != nil {
		t.Fatal(err)
	}
	// An extra part that Complete leaves out.
	if _, err := s.PutPart(ctx, PartInput{Bucket: "b", Key: "big", UploadID: u.ID, Number: 9, Body: strings.NewReader("unused"), Size: 6}); err != nil {
		t.Fatal(err)
	}
	parts, trunc, err := s.Parts(ctx, "b", "big", u.ID, 0, 2)
	if err != nil || len(parts) != 2 || !trunc || parts[1].Number != 2 {
		t.Fatalf("parts page: %+v %v %v", parts, trunc, err)
	}
	bad := []struct {
		name  string
		parts []CompletePart
		min   int64
		want  error
	}{
		{"order", []CompletePart{{2, etags[1], ""}, {1, etags[0], ""}}, 1, ErrInvalidPartOrder},
		{"etag", []CompletePart{{1, etags[1], ""}}, 1, ErrInvalidPart},
		{"missing", []CompletePart{{1, etags[0], ""}, {4, etags[0], ""}}, 1, ErrInvalidPart},
		{"small", []CompletePart{{1, etags[0], ""}, {3, etags[2], ""}}, 10, ErrEntityTooSmall},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Complete(ctx, CompleteInput{Bucket: "b", Key: "big", UploadID: u.ID, Parts: tc.parts, MinPartSize: tc.min})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v want %v", err, tc.want)
			}
		})
	}
	var list []CompletePart
	for i, e := range etags {
		list = append(list, CompletePart{i + 1, `"` + e + `"`, ""})
	}
	o, err := s.Complete(ctx, CompleteInput{Bucket: "b", Key: "big", UploadID: u.ID, Parts: list, MinPartSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	var sums []byte
	for _, e := range etags {
		raw, _ := hex.DecodeString(e)
		sums = append(sums, raw...)
	}
	if want := md5hex(string(sums)) + "-3"; o.ETag != want {
		t.Fatalf("etag %s want %s", o.ETag, want)
	}
	if got := get(t, s, "big"); got != strings.Join(partData, "") {
		t.Fatalf("got %q", got)
	}
	r, _ := s.Open(ctx, "b", "big", nil)
	var buf bytes.Buffer
	r.WriteRange(&buf, 7, 6)
	sec, _ := io.ReadAll(r.Section(7, 6))
	r.Close()
	if buf.String() != "e-part" || string(sec) != "e-part" {
		t.Fatalf("range across parts: %q %q", buf.String(), sec)
	}
	if _, err := s.GetUpload(ctx, "b", "big", u.ID); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("upload still there: %v", err)
	}
}

func TestUploadsListingAndAbort(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	var ids []string
	for _, k := range []string{"x/1", "x/2", "y", "y"} {
		u, err := s.CreateUpload(ctx, Upload{Bucket: "b", Key: k, Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
		if _, err := s.PutPart(ctx, PartInput{Bucket: "b", Key: k, UploadID: u.ID, Number: 1, Body: strings.NewReader("p"), Size: 1}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Uploads(ctx, "b", UploadsInput{Delimiter: "/", Max: 10})
	if err != nil || len(res.Prefixes) != 1 || len(res.Uploads) != 2 || res.Uploads[0].ID != ids[2] {
		t.Fatalf("uploads: %+v %v", res, err)
	}
	res, err = s.Uploads(ctx, "b", UploadsInput{KeyMarker: "y", UploadIDMarker: ids[2], Max: 10})
	if err != nil || len(res.Uploads) != 1 || res.Uploads[0].ID != ids[3] {
		t.Fatalf("uploads after marker: %+v %v", res, err)
	}
	if err := s.Abort(ctx, "b", "y", ids[2]); err != nil {
		t.Fatal(err)
	}
	if err := s.Abort(ctx, "b", "y", ids[2]); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("second abort: %v", err)
	}
	if err := s.DeleteBucket(ctx, "b"); err != nil {
		t.Fatalf("delete bucket with uploads: %v", err)
	}
	if err := s.CreateBucket(ctx, Bucket{Name: "b", Owner: owner}, 0); err != nil {
		t.Fatal(err)
	}
}

func TestCopySharesData(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	put(t, s, "src", "source data")
	o, err := s.Copy(ctx, CopyInput{
		SrcBucket: "b", SrcKey: "src", DstBucket: "b", DstKey: "dst",
		Dest: func(src *Object) (Object, error) { return Object{Owner: owner, Meta: src.Meta}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.ETag != md5hex("source data") {
		t.Fatalf("etag %s", o.ETag)
	}
	if _, err := s.Delete(ctx, "b", "src", nil); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "dst"); got != "source data" {
		t.Fatalf("copy reads %q after source deleted", got)
	}
}

func TestBuckets(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	other := acl.Owner{ID: "other"}
	if err := s.CreateBucket(ctx, Bucket{Name: "b", Owner: owner}, 0); !errors.Is(err, ErrBucketOwned) {
		t.Fatalf("recreate own: %v", err)
	}
	if err := s.CreateBucket(ctx, Bucket{Name: "b", Owner: other}, 0); !errors.Is(err, ErrBucketExists) {
		t.Fatalf("create other's: %v", err)
	}
	if err := s.CreateBucket(ctx, Bucket{Name: "c", Owner: owner}, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucket(ctx, Bucket{Name: "d", Owner: owner}, 2); !errors.Is(err, ErrTooManyBuckets) {
		t.Fatalf("over limit: %v", err)
	}
	bs, err := s.Buckets(ctx, owner.ID)
	if err != nil || len(bs) != 2 || bs[0].Name != "b" || bs[1].Name != "c" {
		t.Fatalf("buckets: %+v %v", bs, err)
	}
	put(t, s, "k", "v")
	if err := s.DeleteBucket(ctx, "b"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("delete non-empty: %v", err)
	}
	if err := s.DeleteBucket(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBucket(ctx, "c"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("delete missing: %v", err)
	}
}

func TestLargePutPipelines(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	data := make([]byte, 19*bufSize/2+123)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	o, err := s.Put(ctx, PutInput{Bucket: "b", Key: "large", Body: bytes.NewReader(data), Size: int64(len(data)), Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	if o.ETag != md5hex(string(data)) {
		t.Fatalf("etag %s, want %s", o.ETag, md5hex(string(data)))
	}
	if got := get(t, s, "large"); got != string(data) {
		t.Fatal("data differs")
	}
	bad := errors.New("verdict at the end")
	_, err = s.Put(ctx, PutInput{Bucket: "b", Key: "bad", Body: io.MultiReader(bytes.NewReader(data), errReader{bad}), Size: int64(len(data)), Owner: owner})
	if !errors.Is(err, bad) {
		t.Fatalf("got %v", err)
	}
	_, err = s.Put(ctx, PutInput{Bucket: "b", Key: "short", Body: bytes.NewReader(data[:len(data)-1]), Size: int64(len(data)), Owner: owner})
	if !errors.Is(err, ErrIncompleteBody) {
		t.Fatalf("short body: %v", err)
	}
}

// TestSmallObjectsInline checks that objects up to inlineMax keep their
// data in the database, through every operation that reads, copies,
// replaces or drops it, and across a reopen.
func TestSmallObjectsInline(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "b", Owner: owner}, 0); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("abcdefgh", inlineMax/8)
	for _, c := range []struct {
		key, data string
		inline    bool
	}{{"empty", "", true}, {"small", "hello", true}, {"max", big, true}, {"over", big + "!", false}} {
		o := put(t, s, c.key, c.data)
		if len(o.Chunks) != 1 || o.Chunks[0].Inline != c.inline || o.ETag != md5hex(c.data) {
			t.Fatalf("%s: %+v", c.key, o)
		}
		if got := get(t, s, c.key); got != c.data {
			t.Fatalf("%s: read %d bytes back, want %d", c.key, len(got), len(c.data))
		}
	}
	files := func() int {
		n := 0
		for _, sub := range []string{"tmp", "data"} {
			filepath.WalkDir(filepath.Join(dir, sub), func(_ string, d fs.DirEntry, _ error) error {
				if d != nil && !d.IsDir() {
					n++
				}
				return nil
			})
		}
		return n
	}
	if n := files(); n != 1 {
		t.Fatalf("%d data files, want 1 (the object over the limit)", n)
	}
	r, err := s.Open(ctx, "b", "max", nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := r.WriteRange(&buf, 5, 10); err != nil || buf.String() != big[5:15] {
		t.Fatalf("range %q %v", buf.String(), err)
	}
	sec := r.Section(inlineMax-3, 3)
	tail, err := io.ReadAll(sec)
	if err != nil || string(tail) != big[inlineMax-3:] {
		t.Fatalf("section %q %v", tail, err)
	}
	sec.Close()
	// Overwrite and delete while the reader is open: it keeps what it read.
	put(t, s, "max", "replaced")
	buf.Reset()
	if _, err := r.WriteRange(&buf, 0, r.Size); err != nil || buf.String() != big {
		t.Fatalf("reader after overwrite: %d bytes, %v", buf.Len(), err)
	}
	r.Close()
	if _, err := s.Copy(ctx, CopyInput{SrcBucket: "b", SrcKey: "small", DstBucket: "b", DstKey: "copy",
		Dest: func(src *Object) (Object, error) { return Object{Owner: owner}, nil }}); err != nil {
		t.Fatal(err)
	}
	put(t, s, "over", "now small") // a file released, inline data put
	put(t, s, "small", big+"!!")   // inline data dropped, a file put
	if _, err := s.Delete(ctx, "b", "empty", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, dir)
	defer s.Close()
	want := map[string]string{"max": "replaced", "copy": "hello", "over": "now small", "small": big + "!!"}
	for k, v := range want {
		if got := get(t, s, k); got != v {
			t.Fatalf("after reopen, %s = %q", k, got)
		}
	}
	if _, err := s.Head(ctx, "b", "empty"); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("deleted object: %v", err)
	}
	for name, body := range map[string]io.Reader{
		"short": strings.NewReader("abc"),
		"long":  strings.NewReader("abcdefgh"),
	} {
		_, err := s.Put(ctx, PutInput{Bucket: "b", Key: name, Body: body, Size: 5, Owner: owner})
		if want := map[string]error{"short": ErrIncompleteBody, "long": ErrTooLarge}[name]; !errors.Is(err, want) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestLargePutSegments writes bodies large enough to be split into
// segment files written in parallel, and checks that every way a body can
// fail leaves no file behind.
func TestLargePutSegments(t *testing.T) {
	s := newStore(t)
	s.segSize = 2 * bufSize
	ctx := context.Background()
	data := make([]byte, 9*bufSize+4567) // five segments, the last short
	for i := range data {
		data[i] = byte(i*13/7 + i>>20)
	}
	o, err := s.Put(ctx, PutInput{Bucket: "b", Key: "large", Body: bytes.NewReader(data), Size: int64(len(data)), Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Chunks) != 5 || o.Chunks[4].Size != bufSize+4567 || o.Parts != 0 {
		t.Fatalf("chunks %+v, parts %d", o.Chunks, o.Parts)
	}
	if o.ETag != md5hex(string(data)) {
		t.Fatalf("etag %s, want %s", o.ETag, md5hex(string(data)))
	}
	if got := get(t, s, "large"); got != string(data) {
		t.Fatal("data differs")
	}
	// A range across segment boundaries, through both read paths.
	r, err := s.Open(ctx, "b", "large", nil)
	if err != nil {
		t.Fatal(err)
	}
	off, n := int64(2*bufSize-10), int64(4*bufSize+20)
	var buf bytes.Buffer
	if _, err := r.WriteRange(&buf, off, n); err != nil || !bytes.Equal(buf.Bytes(), data[off:off+n]) {
		t.Fatalf("range: %v", err)
	}
	sec := r.Section(off, n)
	got, err := io.ReadAll(sec)
	sec.Close()
	r.Close()
	if err != nil || !bytes.Equal(got, data[off:off+n]) {
		t.Fatalf("section: %v", err)
	}
	if _, err := s.Copy(ctx, CopyInput{SrcBucket: "b", SrcKey: "large", DstBucket: "b", DstKey: "copy",
		Dest: func(src *Object) (Object, error) { return Object{Owner: owner}, nil }}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "copy"); got != string(data) {
		t.Fatal("copy differs")
	}

	bad := errors.New("verdict at the end")
	cases := map[string]struct {
		body io.Reader
		want error
	}{
		"verdict":  {io.MultiReader(bytes.NewReader(data), errReader{bad}), bad},
		"short":    {bytes.NewReader(data[:len(data)-1]), ErrIncompleteBody},
		"boundary": {bytes.NewReader(data[:4*bufSize]), ErrIncompleteBody},
		"long":     {io.MultiReader(bytes.NewReader(data), strings.NewReader("x")), ErrTooLarge},
	}
	for name, c := range cases {
		_, err := s.Put(ctx, PutInput{Bucket: "b", Key: name, Body: c.body, Size: int64(len(data)), Owner: owner})
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: got %v, want %v", name, err, c.want)
		}
	}
	refused := errors.New("refused")
	_, err = s.Put(ctx, PutInput{Bucket: "b", Key: "refused", Body: bytes.NewReader(data), Size: int64(len(data)), Owner: owner,
		Verify: func(*Object) error { return refused }})
	if !errors.Is(err, refused) {
		t.Fatalf("verify: %v", err)
	}
	// A file that cannot be created fails the writer, and the put.
	tmp := filepath.Join(s.files.root, "tmp")
	if err := os.Rename(tmp, tmp+".away"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(ctx, PutInput{Bucket: "b", Key: "nodir", Body: bytes.NewReader(data), Size: int64(len(data)), Owner: owner})
	if err := os.Rename(tmp+".away", tmp); err != nil {
		t.Fatal(err)
	}
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no tmp dir: %v", err)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("%d files left in tmp/ after failed puts", len(entries))
	}
}

// TestLargePutsShareLanes runs more large puts at once than may be
// written as segments: the rest are written as one file each.
func TestLargePutsShareLanes(t *testing.T) {
	s := newStore(t)
	s.segSize = 2 * bufSize
	ctx := context.Background()
	data := make([]byte, 6*bufSize)
	for i := range data {
		data[i] = byte(i * 31)
	}
	var wg sync.WaitGroup
	objs := make([]Object, 2*parallelPuts+1)
	errs := make([]error, len(objs))
	for i := range objs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			objs[i], errs[i] = s.Put(ctx, PutInput{Bucket: "b", Key: fmt.Sprint(i), Body: bytes.NewReader(data), Size: int64(len(data)), Owner: owner})
		}()
	}
	wg.Wait()
	for i, o := range objs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if len(o.Chunks) != 1 && len(o.Chunks) != 3 {
			t.Fatalf("object %d: %d chunks", i, len(o.Chunks))
		}
		if got := get(t, s, fmt.Sprint(i)); got != string(data) {
			t.Fatalf("object %d differs", i)
		}
	}
	if len(s.lanes) != 0 {
		t.Fatalf("%d lanes still taken", len(s.lanes))
	}
}

func TestConcurrentCreateOnlyOneWins(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	exists := errors.New("exists")
	onlyNew := func(old *Object) error {
		if old != nil {
			return exists
		}
		return nil
	}
	var wg sync.WaitGroup
	results := make([]error, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = s.Put(ctx, PutInput{Bucket: "b", Key: "once", Body: strings.NewReader("x"), Size: 1, Owner: owner, Precondition: onlyNew})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range results {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, exists):
			t.Fatal(err)
		}
	}
	if won != 1 {
		t.Fatalf("%d writers won", won)
	}
}
