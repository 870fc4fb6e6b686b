package main

import (
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// listenInNetns creates a TCP listener inside the network namespace at
// path (the pod's), leaving the rest of the shim in its own. A socket
// belongs to the namespace it was created in, so only the creation needs
// the switch.
func listenInNetns(path, addr string) (net.Listener, error) {
	if path == "" {
		return net.Listen("tcp", addr)
	}
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open pod netns %s: %w", path, err)
	}
	defer unix.Close(target)

	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("open own netns: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter pod netns %s: %w", path, err)
	}
	l, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: Go ends it with the goroutine rather than
		// let other goroutines run in the pod's namespace.
		if l != nil {
			l.Close()
		}
		return nil, fmt.Errorf("return from pod netns: %w", err)
	}
	runtime.UnlockOSThread()
	if lerr != nil {
		return nil, fmt.Errorf("listen on %s in pod netns: %w", addr, lerr)
	}
	return l, nil
}
