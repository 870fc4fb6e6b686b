package dns

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// Run answers from the API's Services once ready, publishes kube-dns, and
// returns nil when its context ends; a port in use fails at once.
func TestServerRun(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	client := fake.NewClientset(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.20", ClusterIPs: []string{"10.96.0.20"}},
	})
	s := &Server{ListenIP: net.IPv4(127, 0, 0, 1), Port: port, ServiceIP: net.IPv4(10, 96, 0, 10), Domain: "cluster.local", Client: client}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- s.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := new(mdns.Msg)
		m.SetQuestion("hello.default.svc.cluster.local.", mdns.TypeA)
		r, _, err := (&mdns.Client{Timeout: time.Second}).Exchange(m, addr)
		if err == nil && len(r.Answer) == 1 && strings.Contains(r.Answer[0].String(), "10.96.0.20") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer for hello.default: %v %v", r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A second server on the same port cannot start.
	second := &Server{ListenIP: s.ListenIP, Port: port, ServiceIP: s.ServiceIP, Domain: s.Domain, Client: client}
	if err := second.Run(ctx, func() {}); err == nil || !strings.Contains(err.Error(), "cluster DNS listen") {
		t.Fatalf("second server on a used port: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
