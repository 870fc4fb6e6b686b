// The server replay's simulated cluster: the Node, Lease and ResourceSlice
// of each trace node, the heartbeat that keeps the nodes Ready, and the
// check that they are Ready and untainted.

package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// serverNode is the Node a kubelet would register for the trace node:
// capacity and allocatable from the trace (pods 1000), Ready, no taints
// (the API server's admission adds node.kubernetes.io/not-ready on create;
// the node lifecycle controller removes it once it sees Ready).
func serverNode(n TraceNode, now time.Time) *v1.Node {
	node := makeNode(n)
	node.UID = ""
	node.Status.Capacity[v1.ResourcePods] = *resource.NewQuantity(1000, resource.DecimalSI)
	node.Status.Allocatable = node.Status.Capacity.DeepCopy()
	node.Status.Conditions = []v1.NodeCondition{{
		Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "simulated by bench/gputrace",
		LastHeartbeatTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now),
	}}
	return node
}

// serverLease is the node's heartbeat in kube-node-lease, as the kubelet
// keeps it.
func serverLease(node *v1.Node, now time.Time) *coordv1.Lease {
	return &coordv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: node.Name, Namespace: v1.NamespaceNodeLease,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}},
		Spec: coordv1.LeaseSpec{HolderIdentity: ptr.To(node.Name), LeaseDurationSeconds: ptr.To[int32](40),
			RenewTime: &metav1.MicroTime{Time: now}},
	}
}

// createNodes registers the simulated nodes (Node, Lease, ResourceSlice).
func createNodes(ctx context.Context, client kubernetes.Interface, trace []TraceNode) ([]*v1.Node, error) {
	var out []*v1.Node
	for _, n := range trace {
		now := time.Now()
		want := serverNode(n, now)
		node, err := client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("create node %s: %w", n.Name, err)
		}
		// Status as the kubelet reports it (whatever create kept of it);
		// the node lifecycle controller may have tainted the new node in
		// between, so a conflict means: read it again and retry.
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			node.Status = want.Status
			updated, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
			if apierrors.IsConflict(err) {
				if latest, getErr := client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{}); getErr == nil {
					node = latest
				}
				return err
			}
			if err == nil {
				node = updated
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("node %s status: %w", n.Name, err)
		}
		if _, err := client.CoordinationV1().Leases(v1.NamespaceNodeLease).Create(ctx, serverLease(node, now), metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("lease %s: %w", n.Name, err)
		}
		if n.GPUs > 0 {
			if _, err := client.ResourceV1().ResourceSlices().Create(ctx, traceSlice(n), metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("ResourceSlice of %s: %w", n.Name, err)
			}
		}
		out = append(out, node)
	}
	return out, nil
}

// heartbeat renews every node's Lease every 10 s, as the kubelet does, so
// that the node lifecycle controller keeps the nodes Ready (it marks a
// node Unknown and taints it after the grace period without a heartbeat).
func heartbeat(ctx context.Context, client kubernetes.Interface, nodes []*v1.Node) {
	leases := client.CoordinationV1().Leases(v1.NamespaceNodeLease)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Second):
		}
		for _, n := range nodes {
			l, err := leases.Get(ctx, n.Name, metav1.GetOptions{})
			if err == nil {
				l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
				_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
			}
			if err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) {
				fmt.Fprintf(os.Stderr, "gputrace: renew lease of %s: %v\n", n.Name, err)
			}
		}
	}
}

// notReady lists the trace nodes that have a taint or are not Ready.
func notReady(ctx context.Context, client kubernetes.Interface, trace []TraceNode) ([]string, error) {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range trace {
		want[n.Name] = true
	}
	var bad []string
	for _, n := range list.Items {
		if !want[n.Name] {
			continue
		}
		delete(want, n.Name)
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || (c.Type == v1.NodeReady && c.Status == v1.ConditionTrue)
		}
		if len(n.Spec.Taints) > 0 || !ready {
			bad = append(bad, fmt.Sprintf("%s (ready %v, taints %v)", n.Name, ready, n.Spec.Taints))
		}
	}
	for n := range want {
		bad = append(bad, n+" (missing)")
	}
	slices.Sort(bad)
	return bad, nil
}

func waitUntainted(ctx context.Context, client kubernetes.Interface, trace []TraceNode, timeout time.Duration) error {
	var bad []string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		bad, err = notReady(ctx, client, trace)
		return err == nil && len(bad) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("nodes not Ready and untainted after %v: %d, e.g. %v", timeout, len(bad), bad[:min(3, len(bad))])
	}
	return nil
}
