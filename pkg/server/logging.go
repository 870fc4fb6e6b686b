package server

import (
	"flag"
	"fmt"
	"os"
	"strconv"

	"k8s.io/klog/v2"

	"github.com/strata-dev/strata/pkg/layout"
)

// setupLogging sends every component's klog output to the data dir's
// strata.log and keeps the terminal for Strata's own progress lines.
func setupLogging(l layout.Layout, verbosity int) error {
	if err := os.MkdirAll(l.LogDir(), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", l.LogDir(), err)
	}
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for k, v := range map[string]string{
		"logtostderr":      "false",
		"alsologtostderr":  "false",
		"stderrthreshold":  "FATAL",
		"log_file":         l.StrataLog(),
		"one_output":       "true",
		"skip_log_headers": "true",
		"v":                strconv.Itoa(verbosity),
	} {
		if err := fs.Set(k, v); err != nil {
			return fmt.Errorf("klog %s: %w", k, err)
		}
	}
	return nil
}

// klogWriter sends a library's own log lines (logrus) into klog's file.
type klogWriter struct{}

func (klogWriter) Write(p []byte) (int, error) {
	klog.InfoDepth(1, string(p))
	return len(p), nil
}
