// counter prints one increasing number per tick, after a run ID drawn at
// start; both live only in memory. A checkpoint of it, restored, goes on
// with the same run ID from where it was; started afresh it would draw a
// new ID and start at 1. The checkpoint e2e test tells the two apart.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	every := flag.Duration("every", 100*time.Millisecond, "time between numbers")
	flag.Parse()
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	run := hex.EncodeToString(id)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-tick.C:
			fmt.Println(run, n)
		case <-stop:
			return
		}
	}
}
