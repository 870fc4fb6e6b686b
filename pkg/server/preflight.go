package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// checkDataDir makes sure the state directory can be created and written,
// and takes an exclusive lock so two servers never share it.
func checkDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s cannot be created: %v; pass --data-dir with a directory you can write", dir, unwrapPathErr(err))
	}
	probe, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return nil, fmt.Errorf("data dir %s is not writable: %v; fix its permissions or pass --data-dir with a directory you can write", dir, unwrapPathErr(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	lock, err := os.OpenFile(filepath.Join(dir, "strata.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: lock file: %w", dir, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("data dir %s is in use by another strata server: stop it first or pass another --data-dir", dir)
	}
	return lock, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

type portUse struct {
	proto, addr, what, flag string
}

// checkPorts fails with one line naming the first port that is taken, who
// needs it and the flag that moves it, before any process is started.
func checkPorts(ports []portUse) error {
	for _, p := range ports {
		var err error
		if p.proto == "udp" {
			var c net.PacketConn
			if c, err = net.ListenPacket("udp", p.addr); err == nil {
				c.Close()
			}
		} else {
			var l net.Listener
			if l, err = net.Listen("tcp", p.addr); err == nil {
				l.Close()
			}
		}
		if err == nil {
			continue
		}
		fix := "stop the process that uses it"
		if p.flag != "" {
			fix += " or pass " + p.flag + " with a free port"
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("port %s (%s, %s) is already in use: %s", portOf(p.addr), p.what, p.proto, fix)
		}
		return fmt.Errorf("cannot listen on %s (%s): %v: %s", p.addr, p.what, unwrapNetErr(err), fix)
	}
	return nil
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func unwrapNetErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
