package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// Server is the cluster DNS server.
type Server struct {
	// ListenIP is where the server listens (the node address); Port is 53.
	ListenIP net.IP
	Port     int
	// ServiceIP is kube-dns's ClusterIP, which the kubelet gives to pods.
	ServiceIP net.IP
	Domain    string
	// Upstreams answer names outside the cluster domain ("host:port").
	Upstreams []string
	Client    kubernetes.Interface

	resolver *Resolver
}

// Run lists Services and EndpointSlices, publishes the kube-dns Service
// that points at this server and answers queries until ctx ends. It calls
// ready once the listeners are bound, and returns an error if either
// listener stops serving: pods must never be left with a dead resolver.
func (s *Server) Run(ctx context.Context, ready func()) error {
	// The informers stop with Run, whatever ends it: Shutdown waits for
	// them, and would wait forever on an early return with ctx still live.
	ctx, cancel := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactory(s.Client, 0)
	defer factory.Shutdown()
	defer cancel()
	svcs := factory.Core().V1().Services()
	eps := factory.Discovery().V1().EndpointSlices()
	s.resolver = &Resolver{Domain: mdns.Fqdn(s.Domain), Services: svcs.Lister(), Endpoints: eps.Lister()}
	svcInformer, epInformer := svcs.Informer(), eps.Informer()
	factory.Start(ctx.Done())

	addr := net.JoinHostPort(s.ListenIP.String(), fmt.Sprint(s.Port))
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("cluster DNS listen udp %s: %w", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("cluster DNS listen tcp %s: %w", addr, err)
	}
	handler := mdns.HandlerFunc(s.serve)
	udp := &mdns.Server{PacketConn: pc, Handler: handler}
	tcp := &mdns.Server{Listener: l, Handler: handler}
	errc := make(chan error, 2)
	for proto, srv := range map[string]*mdns.Server{"udp": udp, "tcp": tcp} {
		go func() {
			err := srv.ActivateAndServe()
			if err == nil {
				err = errors.New("stopped serving")
			}
			errc <- fmt.Errorf("cluster DNS %s %s: %w", proto, addr, err)
		}()
	}
	go func() {
		if !cache.WaitForCacheSync(ctx.Done(), svcInformer.HasSynced, epInformer.HasSynced) {
			return
		}
		// Retry: the API may still be coming up, and the service range
		// allocator needs the default namespace.
		for ctx.Err() == nil {
			if err := s.publishService(ctx); err != nil {
				klog.ErrorS(err, "Publish kube-dns Service; retrying")
				time.Sleep(time.Second)
				continue
			}
			return
		}
	}()
	klog.InfoS("Cluster DNS listening", "address", addr, "domain", s.Domain)
	ready()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	_ = udp.Shutdown()
	_ = tcp.Shutdown()
	return err
}

func (s *Server) serve(w mdns.ResponseWriter, req *mdns.Msg) {
	m := new(mdns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = mdns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	var (
		rrs    []mdns.RR
		exists bool
	)
	switch {
	case strings.HasSuffix(name, "."+s.resolver.Domain) || name == s.resolver.Domain:
		rrs, exists = s.resolver.answer(q)
	case q.Qtype == mdns.TypePTR && strings.HasSuffix(name, ".in-addr.arpa."):
		rrs, exists = s.resolver.reverse(q)
		if !exists {
			s.forward(w, req)
			return
		}
	default:
		s.forward(w, req)
		return
	}
	m.Answer = rrs
	if !exists {
		m.Rcode = mdns.RcodeNameError
	}
	if len(rrs) == 0 {
		m.Ns = []mdns.RR{s.soa()}
	}
	_ = w.WriteMsg(m)
}

func (s *Server) soa() mdns.RR {
	return &mdns.SOA{
		Hdr:     hdr(s.resolver.Domain, mdns.TypeSOA),
		Ns:      "ns.dns." + s.resolver.Domain,
		Mbox:    "hostmaster." + s.resolver.Domain,
		Serial:  uint32(time.Now().Unix()),
		Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: ttl,
	}
}

// forward relays a question outside the cluster domain to the host's
// resolvers; with none configured the answer is SERVFAIL.
func (s *Server) forward(w mdns.ResponseWriter, req *mdns.Msg) {
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	c := &mdns.Client{Net: proto, Timeout: 2 * time.Second}
	for _, up := range s.Upstreams {
		resp, _, err := c.Exchange(req, up)
		if err == nil {
			_ = w.WriteMsg(resp)
			return
		}
	}
	m := new(mdns.Msg)
	m.SetRcode(req, mdns.RcodeServerFailure)
	_ = w.WriteMsg(m)
}

// publishService creates kube-system/kube-dns with a fixed ClusterIP and an
// EndpointSlice that points at this in-process server, so pods and tools
// find cluster DNS where Kubernetes puts it.
func (s *Server) publishService(ctx context.Context) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: "kube-dns", Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "app.kubernetes.io/managed-by": "strata"},
		},
		Spec: corev1.ServiceSpec{
			ClusterIP: s.ServiceIP.String(),
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(int32(s.Port))},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(int32(s.Port))},
			},
		},
	}
	_, err := s.Client.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create kube-dns Service: %w", err)
	}
	port := int32(s.Port)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: "kube-dns-strata", Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: "kube-dns",
				discoveryv1.LabelManagedBy:   "dns.strata.dev",
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{s.ListenIP.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		}},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("dns"), Port: &port, Protocol: ptr.To(corev1.ProtocolUDP)},
			{Name: ptr.To("dns-tcp"), Port: &port, Protocol: ptr.To(corev1.ProtocolTCP)},
		},
	}
	cur, err := s.Client.DiscoveryV1().EndpointSlices(slice.Namespace).Get(ctx, slice.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = s.Client.DiscoveryV1().EndpointSlices(slice.Namespace).Create(ctx, slice, metav1.CreateOptions{})
	case err == nil:
		// The node address may have changed between runs: level-based update.
		slice.ResourceVersion = cur.ResourceVersion
		_, err = s.Client.DiscoveryV1().EndpointSlices(slice.Namespace).Update(ctx, slice, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("publish kube-dns EndpointSlice: %w", err)
	}
	return nil
}

// HostUpstreams reads the host's resolvers from a resolv.conf file. The DNS
// server runs on the host, so loopback resolvers (systemd-resolved's stub)
// are reachable and kept.
func HostUpstreams(resolvConf string) []string {
	cfg, err := mdns.ClientConfigFromFile(resolvConf)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		out = append(out, net.JoinHostPort(s, cfg.Port))
	}
	return out
}
