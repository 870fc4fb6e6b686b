// wasm-hello is the demo WASI command module (build with GOOS=wasip1
// GOARCH=wasm): it greets, lists what it was given, and can be asked to
// misbehave so the shim's limits can be shown and tested.
//
//	wasm-hello                 greet and exit 0
//	wasm-hello exit N          exit with code N
//	wasm-hello alloc MIB       allocate and touch MIB MiB (memory limit)
//	wasm-hello loop            spin forever (deadline, kill)
//	wasm-hello ls DIR          list a directory (a mounted volume)
//	wasm-hello write FILE TXT  write TXT to FILE
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	args := os.Args[1:]
	fmt.Printf("hello from wasm: args=%q\n", args)
	if g := os.Getenv("GREETING"); g != "" {
		fmt.Println("greeting:", g)
	}
	if wd, err := os.Getwd(); err == nil {
		fmt.Println("cwd:", wd)
	}
	if len(args) == 0 {
		return
	}
	switch args[0] {
	case "exit":
		code, _ := strconv.Atoi(arg(args, 1))
		fmt.Fprintf(os.Stderr, "exiting with %d\n", code)
		os.Exit(code)
	case "alloc":
		mib, _ := strconv.Atoi(arg(args, 1))
		var keep [][]byte
		for i := 0; i < mib; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Printf("allocated %d MiB\n", len(keep))
	case "loop":
		fmt.Println("looping")
		n := 0
		for {
			n++
		}
	case "ls":
		entries, err := os.ReadDir(arg(args, 1))
		if err != nil {
			fmt.Fprintln(os.Stderr, "ls:", err)
			os.Exit(1)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		fmt.Println("ls:", strings.Join(names, " "))
	case "write":
		if err := os.WriteFile(arg(args, 1), []byte(arg(args, 2)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", arg(args, 1))
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", args[0])
		os.Exit(2)
	}
}

func arg(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}
