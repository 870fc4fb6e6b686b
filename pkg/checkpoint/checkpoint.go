// Package checkpoint asks a node's kubelet to checkpoint a running
// container (the kubelet checkpoint API, gate ContainerCheckpoint) through
// the API server's node proxy, and turns the answers a user can act on
// into errors that say what to do.
package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/strata-dev/strata/pkg/wasm"
)

// ErrNotSupported says the container's runtime cannot be checkpointed.
var ErrNotSupported = errors.New("checkpoint not supported")

// Request names the container to checkpoint.
type Request struct {
	Namespace, Pod string
	// Container may be empty when the pod has one container.
	Container string
	// Timeout bounds the checkpoint on the kubelet (0: the kubelet's
	// default of four minutes).
	Timeout time.Duration
}

// Result is where the kubelet wrote the checkpoint archive.
type Result struct {
	Node, Container string
	// Archives are paths on the node's file system.
	Archives []string
}

// Container checkpoints one running container and returns the archive the
// kubelet wrote. The container keeps running.
func Container(ctx context.Context, cs kubernetes.Interface, req Request) (*Result, error) {
	pod, err := cs.CoreV1().Pods(req.Namespace).Get(ctx, req.Pod, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", req.Namespace, req.Pod, err)
	}
	name, err := pickContainer(pod, req.Container)
	if err != nil {
		return nil, err
	}
	if err := checkRuntime(ctx, cs, pod); err != nil {
		return nil, err
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase != corev1.PodRunning {
		return nil, fmt.Errorf("pod %s/%s is %s, not running on a node: only a running container can be checkpointed", pod.Namespace, pod.Name, pod.Status.Phase)
	}
	r := cs.CoreV1().RESTClient().Post().
		AbsPath("/api/v1/nodes", pod.Spec.NodeName, "proxy", "checkpoint", pod.Namespace, pod.Name, name)
	if req.Timeout > 0 {
		r = r.Param("timeout", strconv.Itoa(int(req.Timeout.Round(time.Second).Seconds())))
	}
	raw, err := r.DoRaw(ctx)
	if err != nil {
		return nil, explain(pod.Spec.NodeName, name, raw, err)
	}
	var out struct {
		Items []string `json:"items"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Items) == 0 {
		return nil, fmt.Errorf("kubelet on node %s answered %q, not a checkpoint archive path", pod.Spec.NodeName, raw)
	}
	return &Result{Node: pod.Spec.NodeName, Container: name, Archives: out.Items}, nil
}

// pickContainer resolves the container name as kubectl does: the one given,
// or the only container.
func pickContainer(pod *corev1.Pod, name string) (string, error) {
	var names []string
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return name, nil
		}
		names = append(names, c.Name)
	}
	switch {
	case name != "":
		return "", fmt.Errorf("pod %s/%s has no container %q; its containers are %s", pod.Namespace, pod.Name, name, strings.Join(names, ", "))
	case len(names) == 1:
		return names[0], nil
	default:
		return "", fmt.Errorf("pod %s/%s has %d containers (%s): name one with -c", pod.Namespace, pod.Name, len(names), strings.Join(names, ", "))
	}
}

// checkRuntime refuses wasm pods before the node is asked: a wasm
// container is a module in the shim's memory, not a process criu can dump.
func checkRuntime(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) error {
	if pod.Spec.RuntimeClassName == nil {
		return nil
	}
	rc, err := cs.NodeV1().RuntimeClasses().Get(ctx, *pod.Spec.RuntimeClassName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil // the kubelet will not have run it either
	}
	if err != nil {
		return fmt.Errorf("RuntimeClass %s of pod %s/%s: %w", *pod.Spec.RuntimeClassName, pod.Namespace, pod.Name, err)
	}
	if rc.Handler == wasm.RuntimeHandler {
		return fmt.Errorf("pod %s/%s runs on the wasm runtime (RuntimeClass %s): %w for wasm containers; only runc (Linux) containers can be checkpointed",
			pod.Namespace, pod.Name, rc.Name, ErrNotSupported)
	}
	return nil
}

// explain turns the kubelet's refusals into what to do about them.
func explain(node, container string, body []byte, err error) error {
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		msg = err.Error()
	}
	lower := strings.ToLower(msg)
	switch {
	case strings.Contains(lower, "criu binary not found") || strings.Contains(lower, "criu support is disabled") ||
		strings.Contains(lower, "requires at least criu") || strings.Contains(lower, "failed to retrieve criu version"):
		return fmt.Errorf("checkpoint of container %s on node %s: %s: the node needs criu 3.16 or newer: install the criu package "+
			"(on Debian 12, whose criu 3.17 cannot run on recent kernels, `make deps` builds criu 4 with hack/install-criu.sh), then restart strata server", container, node, msg)
	case strings.Contains(lower, "criu failed"):
		return fmt.Errorf("checkpoint of container %s on node %s: %s: criu could not dump the container; its log is the criu-dump.log the message names, on the node. "+
			"On a node without CAP_SYS_RESOURCE (some VMs and sandboxes) criu cannot read the limits of a process running as another user, so only containers running as root can be checkpointed there", container, node, msg)
	case strings.Contains(lower, "not supported") || strings.Contains(lower, "unimplemented"):
		return fmt.Errorf("checkpoint of container %s on node %s: %w: %s", container, node, ErrNotSupported, msg)
	case apierrors.IsNotFound(err) && strings.Contains(lower, "404 page not found"):
		return fmt.Errorf("checkpoint of container %s on node %s: the kubelet does not serve /checkpoint: turn on the ContainerCheckpoint feature gate", container, node)
	}
	return fmt.Errorf("checkpoint of container %s on node %s: %s", container, node, msg)
}
