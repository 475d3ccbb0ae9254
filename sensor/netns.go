package sensor

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNetNS runs f on an OS thread that has joined the network namespace at
// path ("" runs f where we are). Sockets f creates stay in that namespace for
// their lifetime, whichever thread later uses them: that is how the sensor
// captures inside a namespace while it reaches Kafka from its own.
func inNetNS(path string, f func() error) error {
	if path == "" {
		return f()
	}
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("network namespace of this thread: %w", err)
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", path, err)
	}
	ferr := f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and so dies with this goroutine rather
		// than run other goroutines in the wrong namespace.
		return fmt.Errorf("leave network namespace %s: %w", path, err)
	}
	runtime.UnlockOSThread()
	return ferr
}
