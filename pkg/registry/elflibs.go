package registry

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// libDirs are where the dynamic loader looks for shared libraries, in its
// order, on Debian-style (multiarch) and other Linux layouts.
func libDirs() []string {
	triplet := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[runtime.GOARCH]
	return []string{"/lib/" + triplet, "/usr/lib/" + triplet, "/lib64", "/usr/lib64", "/lib", "/usr/lib"}
}

// sharedLibs returns the files a dynamically linked ELF binary needs to
// start: its interpreter (PT_INTERP) and every shared library it names,
// transitively, each at the path the loader will look for it. A static
// binary needs none.
func sharedLibs(binary string) ([]string, error) {
	f, err := elf.Open(binary)
	if err != nil {
		return nil, fmt.Errorf("binary %s is not an ELF file: %w", binary, err)
	}
	defer f.Close()
	interp, err := interpreter(f)
	if err != nil || interp == "" {
		return nil, err
	}
	files := []string{interp}
	seen := map[string]bool{}
	var walk func(file string) error
	walk = func(file string) error {
		lf, err := elf.Open(file)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		needed, err := lf.ImportedLibraries()
		lf.Close()
		if err != nil {
			return fmt.Errorf("%s: shared libraries: %w", file, err)
		}
		for _, name := range needed {
			if seen[name] {
				continue
			}
			seen[name] = true
			found := ""
			for _, dir := range libDirs() {
				if p := filepath.Join(dir, name); fileExists(p) {
					found = p
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, which is not on this machine (looked in %v)", file, name, libDirs())
			}
			files = append(files, found)
			if err := walk(found); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(binary); err != nil {
		return nil, err
	}
	return files, nil
}

// interpreter is an ELF file's dynamic loader (PT_INTERP), "" for a static
// binary.
func interpreter(f *elf.File) (string, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		buf := make([]byte, p.Filesz)
		if _, err := p.ReadAt(buf, 0); err != nil {
			return "", fmt.Errorf("ELF interpreter: %w", err)
		}
		return strings.TrimRight(string(buf), "\x00"), nil
	}
	return "", nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
