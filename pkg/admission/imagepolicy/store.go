package imagepolicy

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	securityv1 "github.com/strata-dev/strata/api/security/v1alpha1"
)

// Store compiles the ClusterImagePolicies in an informer cache. It reads
// the policies at every admission, so a request never sees a policy set
// older than the cache, and recompiles a policy only when it changed (or,
// for keys in Secrets, when SecretTTL has passed).
type Store struct {
	Reader    client.Reader // the manager's cache
	Secrets   SecretKeyReader
	SecretTTL time.Duration

	mu       sync.Mutex
	compiled map[types.UID]compiled
}

type compiled struct {
	resourceVersion string
	at              time.Time
	policy          *Policy
}

// Policies returns every policy, compiled, sorted by name.
func (s *Store) Policies(ctx context.Context) ([]*Policy, error) {
	var list securityv1.ClusterImagePolicyList
	// Read-only use: skip the cache's deep copy of every policy.
	if err := s.Reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list ClusterImagePolicies: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.compiled == nil {
		s.compiled = map[types.UID]compiled{}
	}
	seen := make(map[types.UID]bool, len(list.Items))
	out := make([]*Policy, 0, len(list.Items))
	now := time.Now()
	for i := range list.Items {
		cip := &list.Items[i]
		seen[cip.UID] = true
		c, ok := s.compiled[cip.UID]
		if !ok || c.resourceVersion != cip.ResourceVersion || (c.policy.usesSecrets && now.Sub(c.at) > s.SecretTTL) {
			c = compiled{resourceVersion: cip.ResourceVersion, at: now, policy: Compile(ctx, cip, s.Secrets)}
			s.compiled[cip.UID] = c
		}
		out = append(out, c.policy)
	}
	for uid := range s.compiled {
		if !seen[uid] {
			delete(s.compiled, uid)
		}
	}
	slices.SortFunc(out, func(a, b *Policy) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, nil
}

// SecretReader reads keys from Secrets straight from the API server, so
// the webhook does not have to cache every Secret of the cluster.
type SecretReader struct {
	Reader client.Reader
}

// SecretKey returns the PEM a reference names.
func (r SecretReader) SecretKey(ctx context.Context, ref securityv1.SecretKeyReference) ([]byte, error) {
	key := ref.Key
	if key == "" {
		key = "cosign.pub"
	}
	var s corev1.Secret
	if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("secret %s/%s not found: create it with the public key under %q", ref.Namespace, ref.Name, key)
		}
		return nil, fmt.Errorf("read secret %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	data, ok := s.Data[key]
	if !ok {
		keys := make([]string, 0, len(s.Data))
		for k := range s.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return nil, fmt.Errorf("secret %s/%s has no key %q (it has %v)", ref.Namespace, ref.Name, key, keys)
	}
	return data, nil
}
