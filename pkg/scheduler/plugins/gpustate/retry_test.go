package gpustate

import (
	"context"
	"errors"
	"testing"

	"k8s.io/dynamic-resource-allocation/structured"
	fwk "k8s.io/kube-scheduler/framework"
)

type flakyClaims struct {
	fwk.ResourceClaimTracker
	fails int
	err   error
	calls int
}

func (f *flakyClaims) GatherAllocatedState() (*structured.AllocatedState, error) {
	f.calls++
	if f.calls <= f.fails {
		return nil, f.err
	}
	return &structured.AllocatedState{}, nil
}

func TestGatherAllocatedStateRetriesConcurrentModification(t *testing.T) {
	f := &flakyClaims{fails: 3, err: errors.New(errConcurrentModification)}
	if s, err := gatherAllocatedState(context.Background(), f); err != nil || s == nil || f.calls != 4 {
		t.Errorf("state %v, err %v after %d calls; want a state after 4", s, err, f.calls)
	}
	f = &flakyClaims{fails: 3, err: errors.New("boom")}
	if _, err := gatherAllocatedState(context.Background(), f); err == nil || f.calls != 1 {
		t.Errorf("err %v after %d calls; want boom after 1", err, f.calls)
	}
}
