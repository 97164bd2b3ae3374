package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
)

// record is an instance's instance.json.
type record struct {
	Spec       api.InstanceSpec `json:"spec"`
	State      string           `json:"state"`
	Desired    string           `json:"desired"` // running, stopped or terminated
	Reason     *api.Reason      `json:"reason,omitempty"`
	Since      time.Time        `json:"since"`
	Generation uint64           `json:"generation"`
	// Images are the SHA-256s of the cached images the instance's domain
	// uses; the cache keeps them while the instance has disks.
	Images []string `json:"images,omitempty"`
	// Cleaned is set once a terminated instance's disks are gone.
	Cleaned bool `json:"cleaned,omitempty"`
}

const recordFile = "instance.json"

// write stores rec in dir atomically: a crash leaves the old record or
// the new one.
func (r *record) write(dir string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+recordFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write record %s: %w", r.Spec.ID, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, recordFile))
	}
	if err != nil {
		return fmt.Errorf("write record %s: %w", r.Spec.ID, err)
	}
	return nil
}

// readRecord reads dir's record; os.ErrNotExist when a crash came before
// the first write.
func readRecord(dir string) (record, error) {
	var r record
	data, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("record %s: %w", dir, err)
	}
	if r.Spec.ID == "" || r.Spec.ID != filepath.Base(dir) {
		return r, fmt.Errorf("record %s: %w", dir, errors.New("names another instance"))
	}
	return r, nil
}
