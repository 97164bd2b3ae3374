package store

// maxGroup bounds how many callers share one transaction.
const maxGroup = 512

type op struct {
	fn   func(*Tx) error
	err  error
	done chan struct{}
}

// Commit runs fn in a read-write transaction that it may share with other
// concurrent Commit calls, so that one fsync makes all of them durable.
// It returns once fn's changes are committed, or with fn's error.
//
// fn must be safe to run twice: when any function in a shared transaction
// fails, the transaction is rolled back and each function runs again in a
// transaction of its own, so one caller's error never undoes another's
// work.
func (db *DB) Commit(fn func(*Tx) error) error {
	o := &op{fn: fn, done: make(chan struct{})}
	db.mu.Lock()
	db.pending = append(db.pending, o)
	if !db.running {
		db.running = true
		go db.drain()
	}
	db.mu.Unlock()
	<-o.done
	return o.err
}

// drain commits queued work until the queue is empty. Work that arrives
// while a transaction commits waits for the next one: that is the group.
func (db *DB) drain() {
	for {
		db.mu.Lock()
		group := db.pending
		if len(group) > maxGroup {
			group = group[:maxGroup]
		}
		db.pending = db.pending[len(group):]
		if len(group) == 0 {
			db.running = false
			db.pending = nil
			db.mu.Unlock()
			return
		}
		db.mu.Unlock()
		db.run(group)
	}
}

func (db *DB) run(group []*op) {
	if db.beforeCommit != nil {
		if err := db.beforeCommit(); err != nil {
			for _, o := range group {
				o.err = err
				close(o.done)
			}
			return
		}
	}
	err := db.Update(func(tx *Tx) error {
		for _, o := range group {
			if err := o.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(group) > 1 {
		for _, o := range group {
			o.err = db.Update(o.fn) // beforeCommit already covered it
			close(o.done)
		}
		return
	}
	for _, o := range group {
		o.err = err
		close(o.done)
	}
}
