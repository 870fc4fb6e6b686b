package dra

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/dra/cdiwrap"
)

// podNamingClaim is a pod on n1 whose container "main" uses the
// ResourceClaim claimName directly (no template).
func podNamingClaim(name, claimName string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("pod-" + name)},
		Spec: corev1.PodSpec{
			NodeName:       "n1",
			ResourceClaims: []corev1.PodResourceClaim{{Name: "gpu", ResourceClaimName: ptr.To(claimName)}},
			Containers:     []corev1.Container{{Name: "main", Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpu"}}}}},
		},
	}
}

func TestJoinWatcherRecordsJoiningPods(t *testing.T) {
	ctx := context.Background()
	first := podNamingClaim("first", "shared")
	claim := allocatedClaim("shared", first, share{request: "gpu", device: "gpu-0", compute: 250})
	tests := []struct {
		name   string
		joiner *corev1.Pod
		// edit changes the claim the API server has after the driver
		// prepared it for first.
		edit func(c *resourcev1.ResourceClaim)
		want []string // joiner's CDI devices for "main"; nil: not recorded
	}{
		{name: "reserved joiner gets the claim's device", joiner: podNamingClaim("second", "shared"),
			edit: func(c *resourcev1.ResourceClaim) {
				c.Status.ReservedFor = append(c.Status.ReservedFor, resourcev1.ResourceClaimConsumerReference{Resource: "pods", Name: "second", UID: "pod-second"})
			},
			want: []string{"gpu.strata.dev/gpu=claim-shared-gpu"}},
		{name: "joiner not reserved gets nothing", joiner: podNamingClaim("second", "shared"), edit: func(*resourcev1.ResourceClaim) {}},
		{name: "a new claim under the same name gets nothing from the prepared one", joiner: podNamingClaim("second", "shared"),
			edit: func(c *resourcev1.ResourceClaim) {
				c.UID = "claim-shared-recreated"
				c.Status.ReservedFor = []resourcev1.ResourceClaimConsumerReference{{Resource: "pods", Name: "second", UID: "pod-second"}}
			}},
		{name: "a pod naming another claim gets nothing", joiner: podNamingClaim("second", "other"),
			edit: func(c *resourcev1.ResourceClaim) {
				c.Status.ReservedFor = append(c.Status.ReservedFor, resourcev1.ResourceClaimConsumerReference{Resource: "pods", Name: "second", UID: "pod-second"})
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dirs := tempDirs(t)
			s := newTestState(t, dirs, "2xA100-80GB", first, tt.joiner)
			if res := s.prepare(ctx, []*resourcev1.ResourceClaim{claim})[claim.UID]; res.Err != nil {
				t.Fatal(res.Err)
			}
			inAPI := claim.DeepCopy()
			tt.edit(inAPI)
			if _, err := s.client.ResourceV1().ResourceClaims("default").Create(ctx, inAPI, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
			for _, p := range []*corev1.Pod{first, tt.joiner} {
				if err := indexer.Add(p); err != nil {
					t.Fatal(err)
				}
			}
			w := &joinWatcher{state: s, client: s.client, pods: corelisters.NewPodLister(indexer)}
			// Twice: the second pass must change nothing.
			for range 2 {
				if err := w.sync(ctx, types.NamespacedName{Namespace: "default", Name: tt.joiner.Name}); err != nil {
					t.Fatal(err)
				}
			}
			p, err := cdiwrap.ReadPod(dirs.pods, string(tt.joiner.UID))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.DevicesFor("main"); !slices.Equal(got, tt.want) {
				t.Fatalf("joiner's devices %v, want %v", got, tt.want)
			}
			recorded := slices.Contains(s.claims[claim.UID].Pods, string(tt.joiner.UID))
			if recorded != (tt.want != nil) {
				t.Errorf("joiner in the prepared claim's pods: %v", recorded)
			}
			if tt.want == nil {
				return
			}
			// The checkpoint keeps the join.
			reloaded := newTestState(t, dirs, "2xA100-80GB")
			if !slices.Contains(reloaded.claims[claim.UID].Pods, string(tt.joiner.UID)) {
				t.Errorf("checkpoint lost the join: %v", reloaded.claims[claim.UID].Pods)
			}
		})
	}
}
