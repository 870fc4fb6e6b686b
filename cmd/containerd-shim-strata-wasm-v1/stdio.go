package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
)

// stdio holds the task's stdio: fifos that containerd (CRI: its log
// writer) reads. The module writes to them directly.
type stdio struct {
	stdin, stdout, stderr string

	mu         sync.Mutex
	in         *os.File
	out, errw  *lockedFile
	closedOnce sync.Once
}

type lockedFile struct {
	mu sync.Mutex
	f  *os.File
}

// Write serialises writers: HTTP handler instances share stderr.
func (l *lockedFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return len(p), nil
	}
	return l.f.Write(p)
}

func (l *lockedFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

func openStdio(stdin, stdout, stderr string) (*stdio, error) {
	s := &stdio{stdin: stdin, stdout: stdout, stderr: stderr, out: &lockedFile{}, errw: &lockedFile{}}
	var err error
	if s.out.f, err = openOutput(stdout); err != nil {
		return nil, err
	}
	if s.errw.f, err = openOutput(stderr); err != nil {
		s.close()
		return nil, err
	}
	if stdin != "" {
		// O_RDWR: opening a fifo read-only would block until a writer
		// comes, and a task may have stdin that nobody ever writes.
		if s.in, err = os.OpenFile(stdin, os.O_RDWR|syscall.O_CLOEXEC, 0); err != nil {
			s.close()
			return nil, fmt.Errorf("open stdin %s: %w", stdin, err)
		}
	}
	return s, nil
}

// openOutput opens a fifo path (what CRI and ctr give) or a file:// URI.
func openOutput(p string) (*os.File, error) {
	if p == "" {
		return nil, nil
	}
	if strings.HasPrefix(p, "file://") {
		u, err := url.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("stdio %s: %w", p, err)
		}
		return os.OpenFile(u.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o640)
	}
	if strings.Contains(p, "://") {
		return nil, fmt.Errorf("stdio %s: only fifo paths and file:// are supported", p)
	}
	// O_RDWR does not block if containerd has not opened its end yet; the
	// reader still sees EOF once the shim closes, being the only writer.
	f, err := os.OpenFile(p, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	return f, nil
}

func (s *stdio) stdoutW() io.Writer {
	if s.out == nil {
		return io.Discard
	}
	return s.out
}

func (s *stdio) stderrW() io.Writer {
	if s.errw == nil {
		return io.Discard
	}
	return s.errw
}

func (s *stdio) stdinR() io.Reader {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.in == nil {
		return nil
	}
	return s.in
}

func (s *stdio) closeStdin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.in != nil {
		s.in.Close()
		s.in = nil
	}
}

func (s *stdio) close() {
	s.closedOnce.Do(func() {
		if s.out != nil {
			s.out.close()
		}
		if s.errw != nil {
			s.errw.close()
		}
		s.closeStdin()
	})
}
