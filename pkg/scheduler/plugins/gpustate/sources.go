package gpustate

import (
	"fmt"
	"sync"

	"k8s.io/client-go/tools/cache"
	fwk "k8s.io/kube-scheduler/framework"
)

// Sources gives the Strata GPU plugins of a scheduler one DRASource per
// DRA view (in practice one): one claim index on one informer handler, and
// the claims StrataGPUFit's Reserve marks are seen by every plugin that
// reads the state (the scorers for pods without GPUs, preemption).
type Sources struct {
	mu    sync.Mutex
	byDRA map[fwk.SharedDRAManager]DRASource
}

// NewSources returns an empty Sources, for one scheduler's registry.
func NewSources() *Sources {
	return &Sources{byDRA: map[fwk.SharedDRAManager]DRASource{}}
}

// For returns the DRASource over m, built on the ResourceClaim informer
// claims (the one m is built on) the first time.
func (s *Sources) For(m fwk.SharedDRAManager, claims cache.SharedIndexInformer) (DRASource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if src, ok := s.byDRA[m]; ok {
		return src, nil
	}
	src, err := NewDRASource(m, claims)
	if err != nil {
		return DRASource{}, err
	}
	s.byDRA[m] = src
	return src, nil
}

// Handle returns the handle's DRA view and the DRASource over it; plugin
// names the caller in errors.
func (s *Sources) Handle(h fwk.Handle, plugin string) (fwk.SharedDRAManager, DRASource, error) {
	m, err := DRAManager(h, plugin)
	if err != nil {
		return nil, DRASource{}, err
	}
	src, err := s.For(m, h.SharedInformerFactory().Resource().V1().ResourceClaims().Informer())
	if err != nil {
		return nil, DRASource{}, fmt.Errorf("%s: %w", plugin, err)
	}
	return m, src, nil
}
