package supervise

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// FaultsEnv names the environment variable FaultsFromEnv reads:
// comma-separated component@delay pairs, e.g. "cluster-dns@3s". It exists
// for the end-to-end tests of the failure policies and does nothing unless
// set.
const FaultsEnv = "STRATA_TEST_FAULTS"

// FaultsFromEnv parses a FaultsEnv value; "" means none.
func FaultsFromEnv(value string) (map[string]time.Duration, error) {
	if value == "" {
		return nil, nil
	}
	out := map[string]time.Duration{}
	for _, item := range strings.Split(value, ",") {
		name, delay, ok := strings.Cut(strings.TrimSpace(item), "@")
		d, err := time.ParseDuration(delay)
		if !ok || name == "" || err != nil || d < 0 {
			return nil, fmt.Errorf("%s: %q is not component@delay (e.g. cluster-dns@3s)", FaultsEnv, item)
		}
		out[name] = d
	}
	return out, nil
}

// errInjected is the error of an injected fault.
var errInjected = errors.New("injected fault")

// withFault returns the context to run m under: m's own, or one that an
// injected fault cancels after m is ready. The returned func releases it
// and reports the fault, if it fired.
func (g *Group) withFault(m *member) (context.Context, func() error) {
	delay, ok := g.Faults[m.Name]
	if !ok {
		return m.ctx, func() error { return nil }
	}
	fctx, cancel := context.WithCancelCause(m.ctx)
	stop := make(chan struct{})
	go func() {
		select {
		case <-m.ready:
		case <-stop:
			return
		}
		select {
		case <-time.After(delay):
			cancel(errInjected)
		case <-stop:
		}
	}()
	return fctx, func() error {
		close(stop)
		cause := context.Cause(fctx)
		cancel(nil)
		if errors.Is(cause, errInjected) {
			return fmt.Errorf("%w (%s after ready)", errInjected, delay)
		}
		return nil
	}
}
