package checkpoint

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func pod(runtimeClass string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec:   corev1.PodSpec{NodeName: "n1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if runtimeClass != "" {
		p.Spec.RuntimeClassName = ptr.To(runtimeClass)
	}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
	}
	return p
}

func TestContainerRefusesBeforeAskingTheNode(t *testing.T) {
	wasmClass := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "wasm"}, Handler: "wasm"}
	pending := pod("", "a")
	pending.Status.Phase = corev1.PodPending
	tests := []struct {
		name      string
		pod       *corev1.Pod
		container string
		want      string
		notSupp   bool
	}{
		{name: "two containers, none named", pod: pod("", "a", "b"), want: "has 2 containers (a, b): name one with -c"},
		{name: "unknown container", pod: pod("", "a"), container: "x", want: `has no container "x"; its containers are a`},
		{name: "wasm pod", pod: pod("wasm", "a"), want: "runs on the wasm runtime (RuntimeClass wasm): checkpoint not supported for wasm containers", notSupp: true},
		{name: "not running", pod: pending, want: "is Pending, not running on a node"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(tc.pod, wasmClass)
			_, err := Container(context.Background(), cs, Request{Namespace: "ns", Pod: "p", Container: tc.container})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if errors.Is(err, ErrNotSupported) != tc.notSupp {
				t.Errorf("errors.Is(ErrNotSupported) = %t", !tc.notSupp)
			}
		})
	}
	if _, err := Container(context.Background(), fake.NewClientset(), Request{Namespace: "ns", Pod: "p"}); err == nil || !strings.Contains(err.Error(), `pods "p" not found`) {
		t.Errorf("missing pod: %v", err)
	}
}

func TestExplain(t *testing.T) {
	tests := []struct{ body, want string }{
		{"checkpointing failed (criu binary not found in shim path or system PATH)", "install the criu package"},
		{"checkpoint/restore requires at least CRIU 31600, current version is 31500", "install the criu package"},
		{"runc did not terminate successfully: exit status 1: criu failed: type NOTIFY errno 0 path= /run/x/criu-dump.log", "only containers running as root"},
		{"rpc error: code = Unimplemented desc = checkpoint is not supported for wasm tasks", "checkpoint not supported"},
		{"something else", "on node n1: something else"},
	}
	for _, tc := range tests {
		err := explain("n1", "c", []byte(tc.body), errors.New("the server has asked for the client to provide credentials"))
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.body) {
			t.Errorf("explain(%q) = %v, want %q and the kubelet's words", tc.body, err, tc.want)
		}
	}
}
