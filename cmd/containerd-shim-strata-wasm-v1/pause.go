package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

const pausePidFile = "pause.pid"

// pause is the pod sandbox's process. CRI makes every container's network
// namespace path /proc/<sandbox pid>/ns/net, so the sandbox needs a real
// process that lives in the pod's network namespace; this is it. The main
// thread was locked in init, so setns moves the thread /proc shows.
func pause(args []string) int {
	if len(args) > 0 && args[0] != "" {
		fd, err := unix.Open(args[0], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pause: open netns %s: %v\n", args[0], err)
			return 1
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			fmt.Fprintf(os.Stderr, "pause: setns %s: %v\n", args[0], err)
			return 1
		}
		unix.Close(fd)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	<-sigs
	return 0
}
