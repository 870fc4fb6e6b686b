package gpustate

import (
	"context"
	"fmt"
	"sync"

	resourceapi "k8s.io/api/resource/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
)

// Store is an in-memory GPU state for simulation (the trace replay): the
// GPUs of each node and the pods' ResourceClaims, without DRA's
// allocator. The StrataGPUSim plugin reserves GPUs in it; the scoring
// plugins read it through the same Source interface they use on DRA.
type Store struct {
	mu     sync.RWMutex
	gpus   map[string]*gpushare.Node // Model and GPUFree only
	claims map[string]*resourceapi.ResourceClaim
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{gpus: map[string]*gpushare.Node{}, claims: map[string]*resourceapi.ResourceClaim{}}
}

// AddNode registers a node's GPUs (all free).
func (s *Store) AddNode(name, model string, gpus int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &gpushare.Node{Name: name, Model: model, GPUFree: make([]int64, gpus)}
	for i := range n.GPUFree {
		n.GPUFree[i] = gpu.MilliPerGPU
	}
	s.gpus[name] = n
}

// AddClaim registers a claim for ClaimGetter.
func (s *Store) AddClaim(c *resourceapi.ResourceClaim) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claims[c.Namespace+"/"+c.Name] = c
}

// Claims is the Store's ClaimGetter.
func (s *Store) Claims(ns, name string) (*resourceapi.ResourceClaim, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.claims[ns+"/"+name]
	if !ok {
		return nil, fmt.Errorf("resourceclaim %s/%s not found", ns, name)
	}
	return c, nil
}

// GPUs returns a copy of the node's GPU state (ok=false if unknown).
func (s *Store) GPUs(name string) (gpushare.Node, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok := s.gpus[name]
	if !ok {
		return gpushare.Node{Name: name}, false
	}
	return n.Clone(), true
}

// Update applies f to the node's GPU state under the store's lock.
func (s *Store) Update(name string, f func(n *gpushare.Node) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.gpus[name]
	if !ok {
		return fmt.Errorf("node %s has no GPU state", name)
	}
	return f(n)
}

// Node combines the scheduler's CPU and memory view with the store's GPUs.
func (s *Store) Node(ni fwk.NodeInfo) gpushare.Node {
	n := baseNode(ni)
	s.mu.RLock()
	if g, ok := s.gpus[n.Name]; ok {
		n.Model = g.Model
		n.GPUFree = append([]int64(nil), g.GPUFree...)
	}
	s.mu.RUnlock()
	return n
}

// Nodes implements Source.
func (s *Store) Nodes(_ context.Context, nodes []fwk.NodeInfo) (map[string]gpushare.Node, error) {
	out := make(map[string]gpushare.Node, len(nodes))
	for _, ni := range nodes {
		out[ni.Node().Name] = s.Node(ni)
	}
	return out, nil
}

// NodeLocked is Node for a caller of Update that already holds g.
func (s *Store) NodeLocked(ni fwk.NodeInfo, g *gpushare.Node) gpushare.Node {
	n := baseNode(ni)
	n.Model = g.Model
	n.GPUFree = append([]int64(nil), g.GPUFree...)
	return n
}
