// containerd-shim-strata-wasm-v1 is a containerd runtime v2 shim that runs
// WASI preview1 modules with wazero instead of Linux processes with runc.
// containerd selects it with runtime_type "io.containerd.strata-wasm.v1".
//
// containerd calls the binary three ways (the bundle directory is the
// working directory each time):
//
//	... -namespace NS -address SOCK -publish-binary BIN -id ID start
//	    start (or reuse, for a pod's other containers) the long-running shim
//	    and print its ttrpc address on stdout: that line is the only thing
//	    the shim ever writes to stdout.
//	... -id ID -bundle DIR delete
//	    clean up after a shim that died: print a DeleteResponse.
//	... -namespace NS -address SOCK -id ID   (started by "start" itself)
//	    serve the task API on the socket passed as fd 3.
//
// and, for the pod sandbox, "pause NETNS" runs a tiny process that holds
// the pod network namespace and gives the sandbox a real pid. "install"
// puts the shim on a node of another cluster (install.go).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"k8s.io/klog/v2"
)

func init() {
	// "pause" must setns on the main thread, the one /proc/PID/ns/net
	// shows: lock it before main runs.
	if len(os.Args) > 1 && os.Args[1] == "pause" {
		runtime.LockOSThread()
	}
}

type flags struct {
	namespace, address, publishBinary, id, bundle, socket string
	debug, version                                        bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "pause" {
		os.Exit(pause(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "install" {
		os.Exit(install(os.Args[2:]))
	}
	var f flags
	fs := flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
	fs.StringVar(&f.namespace, "namespace", "", "containerd namespace")
	fs.StringVar(&f.address, "address", "", "containerd's gRPC socket")
	fs.StringVar(&f.publishBinary, "publish-binary", "", "containerd binary (unused: events go over ttrpc)")
	fs.StringVar(&f.id, "id", "", "task id")
	fs.StringVar(&f.bundle, "bundle", "", "bundle directory (delete)")
	fs.StringVar(&f.socket, "socket", "", "unused, accepted for compatibility")
	fs.BoolVar(&f.debug, "debug", false, "verbose logs")
	fs.BoolVar(&f.version, "v", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if f.version {
		fmt.Printf("%s:\n  Runtime: io.containerd.strata-wasm.v1\n  Go version: %s\n", os.Args[0], runtime.Version())
		return
	}
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	if f.debug {
		_ = klogFlags.Set("v", "4")
	}
	var err error
	switch fs.Arg(0) {
	case "start":
		err = start(f)
	case "delete":
		err = deleteBundle(f)
	case "":
		err = serve(f)
	default:
		err = fmt.Errorf("unknown command %q", fs.Arg(0))
	}
	if err != nil {
		// containerd shows a failed start's output (stdout and stderr) in
		// its error, so say it plainly.
		fmt.Fprintf(os.Stderr, "containerd-shim-strata-wasm-v1: %v\n", err)
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}
