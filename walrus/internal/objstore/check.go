package objstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/koala-cloud/koala/pkg/store"
)

// Check verifies the store's invariants on a quiet store: every file a
// record references is live and on disk, every live file is referenced,
// data/ holds no file that is not live, and inline data is stored for
// exactly the chunks that say so. Tests run it after each case.
func (s *Store) Check() error {
	s.flushFreed()
	return s.db.View(func(tx *store.Tx) error {
		referenced := map[string]bool{}
		inline := map[string]bool{}
		objects, _ := tx.Bucket(bktObjects)
		err := objects.ForEachBucket(func(name []byte) error {
			return objects.Bucket(name).ForEach(func(k, v []byte) error {
				var o Object
				if err := store.Decode(v, &o); err != nil {
					return err
				}
				for _, c := range o.Chunks {
					if c.Inline {
						if inline[c.ID] {
							return fmt.Errorf("inline data %s referenced twice (object %s/%s)", c.ID, name, k)
						}
						inline[c.ID] = true
						continue
					}
					if referenced[c.ID] {
						return fmt.Errorf("file %s referenced twice (object %s/%s)", c.ID, name, k)
					}
					referenced[c.ID] = true
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
		parts, _ := tx.Bucket(bktParts)
		err = parts.ForEachBucket(func(upload []byte) error {
			return parts.Bucket(upload).ForEach(func(_, v []byte) error {
				var p Part
				if err := store.Decode(v, &p); err != nil {
					return err
				}
				if referenced[p.FileID] {
					return fmt.Errorf("file %s referenced twice (upload %s)", p.FileID, upload)
				}
				referenced[p.FileID] = true
				return nil
			})
		})
		if err != nil {
			return err
		}
		stored, _ := tx.Bucket(bktInline)
		n := 0
		err = stored.ForEach(func(k, _ []byte) error {
			n++
			if !inline[string(k)] {
				return fmt.Errorf("inline data %s is not referenced", k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n != len(inline) {
			return fmt.Errorf("%d inline chunks referenced, %d stored", len(inline), n)
		}
		live, _ := tx.Bucket(bktFiles)
		n = 0
		err = live.ForEach(func(k, _ []byte) error {
			id := string(k)
			n++
			if !referenced[id] {
				return fmt.Errorf("live file %s is not referenced", id)
			}
			if _, err := os.Stat(s.files.dataPath(id)); err != nil {
				if _, err2 := os.Stat(s.files.tmpPath(id)); err2 != nil {
					return fmt.Errorf("live file %s is missing: %w", id, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n != len(referenced) {
			return fmt.Errorf("%d files referenced, %d live", len(referenced), n)
		}
		return filepath.WalkDir(filepath.Join(s.files.root, "data"), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			if live.Get([]byte(d.Name())) == nil {
				return fmt.Errorf("data file %s is not live", d.Name())
			}
			return nil
		})
	})
}
