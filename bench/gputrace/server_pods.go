// The server replay's pods: the objects it creates (pod, ResourceClaim or
// template), their creation in arrival order under the in-flight bound, and
// reading each pod's outcome (unschedulable, its claim's devices, the GPU
// allocation ratio).

package main

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/gpushare"
)

var notDNS = regexp.MustCompile(`[^a-z0-9]+`)

// shapeName names the ResourceClaimTemplate of a GPU shape: count, milli
// per GPU and accepted models.
func shapeName(t gpushare.Task) string {
	s := fmt.Sprintf("gpu-%dx%d", t.NumGPU, t.GPUMilli)
	if t.Models != "" {
		s += "-" + strings.Trim(notDNS.ReplaceAllString(strings.ToLower(t.Models), "-"), "-")
	}
	return s
}

// serverPod is makePod's pod and claim for the API server: no UIDs, a
// container that passes Pod Security "restricted" (the server's default),
// and with templates the claim replaced by the shape's template.
func serverPod(i int, p TracePod, template bool) (*v1.Pod, *resourceapi.ResourceClaim, *resourceapi.ResourceClaimTemplate) {
	pod, claim := makePod(i, p)
	pod.UID = ""
	pod.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
		SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}}
	pod.Spec.Containers[0].SecurityContext = &v1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
		Capabilities: &v1.Capabilities{Drop: []v1.Capability{"ALL"}}}
	if claim == nil {
		return pod, nil, nil
	}
	claim.UID = ""
	if !template {
		return pod, claim, nil
	}
	name := shapeName(p.Task)
	pod.Spec.ResourceClaims[0].ResourceClaimName = nil
	pod.Spec.ResourceClaims[0].ResourceClaimTemplateName = ptr.To(name)
	return pod, nil, &resourceapi.ResourceClaimTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       resourceapi.ResourceClaimTemplateSpec{Spec: claim.Spec},
	}
}

// creation is what createPods did.
type creation struct {
	last     time.Time     // the last create returned
	slotWait time.Duration // the dispatcher waited for an in-flight slot
	revs     []int64       // each pod's resourceVersion at create
	err      error
}

// createPods creates pods in order: one dispatcher takes an in-flight slot
// per pod and hands the pod to one of n workers. first runs once, before
// the first create.
func createPods(ctx context.Context, client kubernetes.Interface, pods []*v1.Pod, n int, slots chan struct{}, first func()) creation {
	c := creation{revs: make([]int64, len(pods))}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for i := range next {
				p, err := client.CoreV1().Pods(namespace).Create(ctx, pods[i], metav1.CreateOptions{})
				if err != nil {
					cancel(fmt.Errorf("create pod %s: %w", pods[i].Name, err))
					continue
				}
				c.revs[i], _ = strconv.ParseInt(p.ResourceVersion, 10, 64)
			}
		})
	}
dispatch:
	for i := range pods {
		w := time.Now()
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break dispatch
		}
		if i == 0 {
			first()
		} else {
			c.slotWait += time.Since(w)
		}
		select {
		case next <- i:
		case <-ctx.Done():
			break dispatch
		}
	}
	close(next)
	wg.Wait()
	c.last = time.Now()
	if ctx.Err() != nil {
		c.err = context.Cause(ctx)
	}
	return c
}

// outOfOrder counts the pods committed (resourceVersion) before an
// earlier arrival.
func (c creation) outOfOrder() int {
	n, hi := 0, int64(0)
	for _, r := range c.revs {
		if r < hi {
			n++
		}
		hi = max(hi, r)
	}
	return n
}

// order is the pods' indexes sorted by resourceVersion.
func (c creation) order() []int {
	order := make([]int, len(c.revs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(c.revs[a], c.revs[b]) })
	return order
}

func unschedulable(pod *v1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// claimDevices checks that the claim is allocated from the node's pool and
// returns its devices' indexes, "0,1".
func claimDevices(c *resourceapi.ResourceClaim, node string) (string, error) {
	if c == nil {
		return "", fmt.Errorf("no ResourceClaim reserved for the pod")
	}
	if c.Status.Allocation == nil {
		return "", fmt.Errorf("claim %s not allocated", c.Name)
	}
	var devs []string
	for _, r := range c.Status.Allocation.Devices.Results {
		if r.Pool != node {
			return "", fmt.Errorf("claim %s: device %s from pool %s", c.Name, r.Device, r.Pool)
		}
		devs = append(devs, strings.TrimPrefix(r.Device, "gpu-"))
	}
	return strings.Join(devs, ","), nil
}

// allocation is the GPU allocation ratio (% of capacity) when arrived
// demand first reaches capacity and at the end, from placements in arrival
// order, as run computes it.
func allocation(work []TracePod, placements []string, gpuCap int64) (at100, atEnd float64) {
	var allocated, arrived int64
	at100 = -1
	for i, p := range work {
		arrived += p.Task.GPUTotal()
		if placements[i] != "" {
			allocated += p.Task.GPUTotal()
		}
		if at100 < 0 && arrived >= gpuCap {
			at100 = 100 * float64(allocated) / float64(gpuCap)
		}
	}
	atEnd = 100 * float64(allocated) / float64(gpuCap)
	if at100 < 0 {
		at100 = atEnd
	}
	return at100, atEnd
}
