package main

import (
	"context"
	"fmt"
)

func replayDRA(ctx context.Context, rc ReplayConfig) (Result, error) {
	return Result{}, fmt.Errorf("dra mode not implemented yet")
}
