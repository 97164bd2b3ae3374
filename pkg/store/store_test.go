package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

var testSchema = Schema{Version: 2, Buckets: []string{"things"}}

func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "t.db"), testSchema, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type thing struct{ N int }

func TestGroupCommitIsolatesFailures(t *testing.T) {
	db := openTest(t)
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Commit(func(tx *Tx) error {
				if err := tx.Put("things", []byte(fmt.Sprint(i)), thing{i}); err != nil {
					return err
				}
				if i%10 == 0 {
					return boom
				}
				return nil
			})
		}()
	}
	wg.Wait()
	err := db.View(func(tx *Tx) error {
		for i, cerr := range errs {
			var got thing
			gerr := tx.Get("things", []byte(fmt.Sprint(i)), &got)
			switch {
			case i%10 == 0 && (!errors.Is(cerr, boom) || !errors.Is(gerr, ErrNotFound)):
				t.Errorf("%d: failing commit: %v, stored: %v", i, cerr, gerr)
			case i%10 != 0 && (cerr != nil || gerr != nil || got.N != i):
				t.Errorf("%d: commit %v, get %v %+v", i, cerr, gerr, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	db, err := Open(path, testSchema, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error { return tx.Put("nope", []byte("k"), 1) }); !errors.Is(err, ErrUnknownBucket) {
		t.Fatalf("undeclared bucket: %v", err)
	}
	db.Close()
	if _, err := Open(path, Schema{Version: 1, Buckets: testSchema.Buckets}, Options{}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("older program on newer data: %v", err)
	}
	migrated := uint32(0)
	db, err = Open(path, Schema{Version: 3, Buckets: testSchema.Buckets, Migrate: func(tx *Tx, from uint32) error {
		migrated = from
		return nil
	}}, Options{})
	if err != nil || migrated != 2 {
		t.Fatalf("migrate: %v from %d", err, migrated)
	}
	db.Close()
}

func TestValueEncoding(t *testing.T) {
	raw, err := Encode(thing{7})
	if err != nil || raw[0] != valueJSON {
		t.Fatalf("encode: %v %q", err, raw)
	}
	var got thing
	if err := Decode(raw, &got); err != nil || got.N != 7 {
		t.Fatalf("decode: %v %+v", err, got)
	}
	if err := Decode([]byte(`{"N":7}`), &got); !errors.Is(err, ErrBadValue) {
		t.Fatalf("unversioned value: %v", err)
	}
}

func BenchmarkCommit(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "t.db"), testSchema, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.SetParallelism(16)
	var n sync.Mutex
	i := 0
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			i++
			k := fmt.Sprint(i)
			n.Unlock()
			if err := db.Commit(func(tx *Tx) error { return tx.Put("things", []byte(k), thing{1}) }); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestBeforeCommitRunsPerGroupAndFailsIt(t *testing.T) {
	fail := errors.New("cannot sync")
	calls := 0
	var mu sync.Mutex
	db, err := Open(filepath.Join(t.TempDir(), "t.db"), testSchema, Options{BeforeCommit: func() error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 2 {
			return fail
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	put := func(k string) error {
		return db.Commit(func(tx *Tx) error { return tx.Put("things", []byte(k), thing{1}) })
	}
	if err := put("a"); err != nil {
		t.Fatal(err)
	}
	if err := put("b"); !errors.Is(err, fail) {
		t.Fatalf("commit after a failed hook: %v", err)
	}
	if err := db.View(func(tx *Tx) error { return tx.Get("things", []byte("b"), &thing{}) }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("record of a failed group is there: %v", err)
	}
}
