package dra

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/dynamic-resource-allocation/resourceclaim"
	"k8s.io/klog/v2"
)

// joinWatcher records the devices of pods that join a claim already
// prepared on this node. The kubelet prepares a claim once, for the pods
// reserved at that time; a pod that is added to the claim's reservedFor
// later (several pods naming one ResourceClaim) starts without calling
// the driver, so without this its containers would get no CDI devices
// from the runc wrapper. It watches the node's pods and, for a pod naming
// a prepared claim it is not recorded for, checks the claim (same UID, pod
// in reservedFor) and writes the pod's PodDevices file.
//
// The file must exist before the kubelet creates the pod's containers; the
// watch sees the pod's binding when the kubelet does, and the sandbox and
// its network come first, so it normally does. A container created before
// the file is written gets no devices (the race is documented in README.md).
type joinWatcher struct {
	state  *state
	client kubernetes.Interface
	pods   corelisters.PodLister
	queue  workqueue.TypedRateLimitingInterface[types.NamespacedName]
}

// startJoinWatcher runs a joinWatcher until ctx is done.
func startJoinWatcher(ctx context.Context, st *state, client kubernetes.Interface) error {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", st.node).String()
	}))
	pods := factory.Core().V1().Pods()
	w := &joinWatcher{
		state:  st,
		client: client,
		pods:   pods.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](5*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Name: "dra-gpu-joiners"}),
	}
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.enqueue,
		UpdateFunc: func(_, obj any) { w.enqueue(obj) },
	}); err != nil {
		return fmt.Errorf("watch the node's pods: %w", err)
	}
	factory.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		w.queue.ShutDown()
		factory.Shutdown()
	}()
	go w.run(ctx)
	return nil
}

// enqueue queues only pods that name a prepared claim they are not
// recorded for, which is rare: most pod events cost a map walk.
func (w *joinWatcher) enqueue(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || len(pod.Spec.ResourceClaims) == 0 || len(w.state.unrecordedClaims(pod)) == 0 {
		return
	}
	w.queue.Add(types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name})
}

func (w *joinWatcher) run(ctx context.Context) {
	logger := klog.FromContext(ctx)
	for {
		key, shutdown := w.queue.Get()
		if shutdown {
			return
		}
		if err := w.sync(ctx, key); err != nil {
			logger.Error(err, "Recording the GPU devices of a pod joining a prepared claim; retrying", "pod", key)
			w.queue.AddRateLimited(key)
		} else {
			w.queue.Forget(key)
		}
		w.queue.Done(key)
	}
}

// sync records pod key in every prepared claim it names and is reserved
// for. It is idempotent: a pod already recorded is left alone.
func (w *joinWatcher) sync(ctx context.Context, key types.NamespacedName) error {
	pod, err := w.pods.Pods(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range w.state.unrecordedClaims(pod) {
		// The name may by now belong to another claim; only the one the
		// driver prepared, with the pod reserved, hands out its devices.
		claim, err := w.client.ResourceV1().ResourceClaims(pod.Namespace).Get(ctx, c.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("get claim %s/%s: %w", pod.Namespace, c.name, err)
		}
		if claim.UID != c.uid || !slices.ContainsFunc(claim.Status.ReservedFor, func(r resourcev1.ResourceClaimConsumerReference) bool {
			return isPodRef(r) && r.UID == pod.UID
		}) {
			continue
		}
		if err := w.state.recordJoin(ctx, c.uid, pod); err != nil {
			return err
		}
	}
	return nil
}

// claimRef names a prepared claim.
type claimRef struct {
	uid  types.UID
	name string
}

// unrecordedClaims are the prepared claims that pod names and whose
// devices are not recorded for it yet.
func (s *state) unrecordedClaims(pod *corev1.Pod) []claimRef {
	var names []string
	for i := range pod.Spec.ResourceClaims {
		// A template's claim is named in the pod's status once created.
		if name, _, err := resourceclaim.Name(pod, &pod.Spec.ResourceClaims[i]); err == nil && name != nil {
			names = append(names, *name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var refs []claimRef
	for _, c := range s.claims {
		if c.Namespace == pod.Namespace && slices.Contains(names, c.Name) && !slices.Contains(c.Pods, string(pod.UID)) {
			refs = append(refs, claimRef{uid: c.UID, name: c.Name})
		}
	}
	return refs
}

// recordJoin records pod's devices from the prepared claim uid, if it is
// still prepared, and saves the checkpoint.
func (s *state) recordJoin(ctx context.Context, uid types.UID, pod *corev1.Pod) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.claims[uid]
	if !ok || slices.Contains(c.Pods, string(pod.UID)) {
		return nil
	}
	if err := s.recordPod(c, pod); err != nil {
		return err
	}
	if err := s.save(); err != nil {
		return fmt.Errorf("save DRA checkpoint: %w", err)
	}
	klog.FromContext(ctx).V(2).Info("Pod joined a prepared GPU claim", "pod", klog.KObj(pod), "claim", klog.KRef(c.Namespace, c.Name))
	return nil
}
