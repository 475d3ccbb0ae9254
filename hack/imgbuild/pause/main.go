// Command pause is the sandbox process of every pod on the local node: it holds the pod's namespaces,
// reaps orphans, and exits on SIGINT or SIGTERM. Built static, it is the whole pause image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	children := make(chan os.Signal, 8)
	signal.Notify(children, syscall.SIGCHLD)
	go func() {
		for range children {
			reap()
		}
	}()
	<-stop
}

// reap collects every exited child, so none stays a zombie in the pod's PID namespace.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
