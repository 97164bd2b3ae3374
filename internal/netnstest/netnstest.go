// Package netnstest lets tests act inside named network namespaces
// (those `ip netns add` creates under /run/netns): sockets made there
// stay there, whichever thread uses them later.
package netnstest

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread that has entered the network namespace ns,
// and returns that thread to the caller's namespace afterwards. A thread
// that cannot return is never reused: Do panics, which ends the test
// binary rather than letting later code run in the wrong namespace.
func Do(ns string, fn func()) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return err
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	defer func() {
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			panic(fmt.Sprintf("cannot return to the caller's network namespace: %v", err))
		}
	}()
	fn()
	return nil
}
