//go:build !cgo

package dra

import "fmt"

// nvmlInventory: go-nvml needs cgo (it loads libnvidia-ml.so.1 with dlopen);
// a binary built without cgo has only the simulated backend.
func nvmlInventory() ([]GPU, error) {
	return nil, fmt.Errorf("%w: this binary was built without cgo", ErrNVMLUnavailable)
}
