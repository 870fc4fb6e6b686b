package dns

import (
	"fmt"
	"os"
	"testing"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

func testResolver(t *testing.T) *Resolver {
	t.Helper()
	svcs := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	eps := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	add := func(idx cache.Indexer, obj any) {
		if err := idx.Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	add(svcs, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.20", ClusterIPs: []string{"10.96.0.20"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	})
	add(svcs, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "prod"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone,
			Ports: []corev1.ServicePort{{Name: "pg", Port: 5432, Protocol: corev1.ProtocolTCP}}},
	})
	add(svcs, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.org"},
	})
	add(eps, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "db-1", Namespace: "prod", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.88.0.5"}, Hostname: ptr.To("db-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.88.0.6"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.88.0.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
	})
	return &Resolver{
		Domain:    "cluster.local.",
		Services:  corelisters.NewServiceLister(svcs),
		Endpoints: discoverylisters.NewEndpointSliceLister(eps),
	}
}

func TestResolver(t *testing.T) {
	r := testResolver(t)
	tests := []struct {
		name       string
		qname      string
		qtype      uint16
		wantExists bool
		want       []string // rdata, in order
	}{
		{"service A", "hello.default.svc.cluster.local.", mdns.TypeA, true, []string{"10.96.0.20"}},
		{"service A is case-insensitive", "Hello.Default.SVC.cluster.local.", mdns.TypeA, true, []string{"10.96.0.20"}},
		{"service AAAA is NODATA", "hello.default.svc.cluster.local.", mdns.TypeAAAA, true, nil},
		{"unknown service", "nope.default.svc.cluster.local.", mdns.TypeA, false, nil},
		{"unknown namespace", "hello.other.svc.cluster.local.", mdns.TypeA, false, nil},
		{"headless lists ready endpoints", "db.prod.svc.cluster.local.", mdns.TypeA, true, []string{"10.88.0.5", "10.88.0.6"}},
		{"headless endpoint hostname", "db-0.db.prod.svc.cluster.local.", mdns.TypeA, true, []string{"10.88.0.5"}},
		{"headless endpoint by dashed address", "10-88-0-6.db.prod.svc.cluster.local.", mdns.TypeA, true, []string{"10.88.0.6"}},
		{"SRV of a ClusterIP service", "_http._tcp.hello.default.svc.cluster.local.", mdns.TypeSRV, true, []string{"80 hello.default.svc.cluster.local."}},
		{"SRV of a headless service", "_pg._tcp.db.prod.svc.cluster.local.", mdns.TypeSRV, true, []string{"5432 db-0.db.prod.svc.cluster.local.", "5432 10-88-0-6.db.prod.svc.cluster.local."}},
		{"SRV of an unknown port", "_nope._tcp.hello.default.svc.cluster.local.", mdns.TypeSRV, false, nil},
		{"ExternalName is a CNAME", "ext.default.svc.cluster.local.", mdns.TypeA, true, []string{"example.org."}},
		{"pod record", "10-88-0-9.default.pod.cluster.local.", mdns.TypeA, true, []string{"10.88.0.9"}},
		{"malformed pod record", "10-88-0.default.pod.cluster.local.", mdns.TypeA, false, nil},
		{"outside the domain", "example.org.", mdns.TypeA, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rrs, exists := r.answer(mdns.Question{Name: tc.qname, Qtype: tc.qtype, Qclass: mdns.ClassINET})
			if exists != tc.wantExists {
				t.Fatalf("exists=%v, want %v", exists, tc.wantExists)
			}
			var got []string
			for _, rr := range rrs {
				switch v := rr.(type) {
				case *mdns.A:
					got = append(got, v.A.String())
				case *mdns.SRV:
					got = append(got, fmt.Sprintf("%d %s", v.Port, v.Target))
				case *mdns.CNAME:
					got = append(got, v.Target)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestReverse(t *testing.T) {
	r := testResolver(t)
	rrs, ok := r.reverse(mdns.Question{Name: "20.0.96.10.in-addr.arpa.", Qtype: mdns.TypePTR})
	if !ok || len(rrs) != 1 || rrs[0].(*mdns.PTR).Ptr != "hello.default.svc.cluster.local." {
		t.Fatalf("PTR for 10.96.0.20: %v %v", rrs, ok)
	}
	if _, ok := r.reverse(mdns.Question{Name: "1.2.3.4.in-addr.arpa.", Qtype: mdns.TypePTR}); ok {
		t.Fatal("PTR for an unknown address claimed to exist")
	}
}

func TestHostUpstreamsKeepsLoopback(t *testing.T) {
	f := t.TempDir() + "/resolv.conf"
	if err := os.WriteFile(f, []byte("nameserver 127.0.0.53\nnameserver 10.0.0.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := HostUpstreams(f)
	if len(got) != 2 || got[0] != "127.0.0.53:53" || got[1] != "10.0.0.2:53" {
		t.Fatalf("upstreams %v", got)
	}
	if HostUpstreams(f+".missing") != nil {
		t.Fatal("missing resolv.conf gave upstreams")
	}
}
