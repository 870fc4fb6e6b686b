package imagepolicy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/util/cache"

	"github.com/strata-dev/strata/pkg/signing"
)

// Verifier checks image signatures against policies and remembers the
// images that passed.
//
// Only successes are cached, keyed by manifest digest and the policy's key
// set: a digest's content cannot change, so the one thing a cached success
// can miss is a signature deleted from the registry (a revocation), which
// takes effect after CacheTTL. Failures are not cached, so an image signed
// after a denial is admitted at the next try. Tags are never cached: each
// admission resolves them again, which is what makes re-pushing a tag take
// effect at once.
type Verifier struct {
	cache *cache.LRUExpireCache
	ttl   time.Duration
	group singleflight.Group
	opts  []remote.Option
}

// NewVerifier returns a Verifier caching up to size successes for ttl.
// opts go to go-containerregistry (transport, auth, user agent).
func NewVerifier(size int, ttl time.Duration, opts ...remote.Option) *Verifier {
	// One puller keeps each repository's transport, so a request does not
	// ping the registry and negotiate auth again before every call.
	if p, err := remote.NewPuller(opts...); err == nil {
		opts = append(opts, remote.Reuse(p))
	}
	return &Verifier{cache: cache.NewLRUExpireCache(size), ttl: ttl, opts: opts}
}

// Resolve returns the digest a tag points at now.
func (v *Verifier) Resolve(ctx context.Context, ref name.Reference) (name.Digest, error) {
	if d, ok := ref.(name.Digest); ok {
		return d, nil
	}
	return signing.Resolve(ctx, ref.String(), v.opts...)
}

// Verify checks that the image at digest d carries a signature from one of
// p's keys.
func (v *Verifier) Verify(ctx context.Context, d name.Digest, p *Policy) error {
	if p.broken {
		return fmt.Errorf("no key of the policy could be loaded: %w", p.problem)
	}
	key := d.String() + "|" + p.keyID
	if _, ok := v.cache.Get(key); ok {
		return nil
	}
	// Pods of one ReplicaSet arrive together: verify each digest once.
	_, err, _ := v.group.Do(key, func() (any, error) {
		if _, err := signing.Verify(ctx, d.String(), p.verifiers, v.opts...); err != nil {
			return nil, err
		}
		v.cache.Add(key, struct{}{}, v.ttl)
		return nil, nil
	})
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return fmt.Errorf("verification did not finish in time (registry slow or unreachable): %w", err)
	}
	return err
}
