package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWaitClosed(t *testing.T) {
	boom := errors.New("kube-controller-manager: boom")
	tests := []struct {
		name    string
		setup   func(ch chan struct{}, fatal chan error, cancel context.CancelFunc)
		want    error
		wantMsg string
	}{
		{"closed", func(ch chan struct{}, _ chan error, _ context.CancelFunc) { close(ch) }, nil, ""},
		{"a part failed", func(_ chan struct{}, fatal chan error, _ context.CancelFunc) { fatal <- boom }, boom, ""},
		{"stopped", func(_ chan struct{}, _ chan error, cancel context.CancelFunc) { cancel() }, context.Canceled, ""},
		{"timeout", func(chan struct{}, chan error, context.CancelFunc) {}, nil,
			"kube-controller-manager did not build its controllers within 50ms; see /data/logs/strata.log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch, fatal := make(chan struct{}), make(chan error, 1)
			tt.setup(ch, fatal, cancel)
			err := waitClosed(ctx, ch, fatal, 50*time.Millisecond, "kube-controller-manager did not build its controllers", "/data/logs/strata.log")
			switch {
			case tt.wantMsg != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("got %v, want %q", err, tt.wantMsg)
				}
			case !errors.Is(err, tt.want) && !(err == nil && tt.want == nil):
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}
