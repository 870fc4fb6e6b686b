// Package dns is Strata's cluster DNS: an in-process server that answers
// for Services and Pods the way CoreDNS's kubernetes plugin does, from the
// same informers the rest of the control plane uses.
package dns

import (
	"net"
	"sort"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
)

// ttl matches CoreDNS's kubernetes plugin default.
const ttl = 5

// Resolver answers questions about names under the cluster domain.
type Resolver struct {
	Domain    string // e.g. "cluster.local."
	Services  corelisters.ServiceLister
	Endpoints discoverylisters.EndpointSliceLister
}

// answer returns the records for one question and whether the name exists.
// A name that exists with no record of the asked type gets NOERROR with no
// answers (NODATA), as CoreDNS does.
func (r *Resolver) answer(q mdns.Question) (rrs []mdns.RR, exists bool) {
	name := strings.ToLower(q.Name)
	if name == r.Domain {
		return nil, true
	}
	rel := strings.TrimSuffix(name, "."+r.Domain)
	if rel == name {
		return nil, false
	}
	labels := strings.Split(rel, ".")
	n := len(labels)
	switch {
	case n >= 1 && labels[n-1] == "svc":
		return r.service(q, labels[:n-1])
	case n >= 1 && labels[n-1] == "pod":
		return r.pod(q, labels[:n-1])
	}
	return nil, false
}

// service handles svc.ns.svc, host.svc.ns.svc and _port._proto.svc.ns.svc.
func (r *Resolver) service(q mdns.Question, l []string) ([]mdns.RR, bool) {
	switch len(l) {
	case 1: // ns.svc: the namespace exists as a zone cut only if it has services
		svcs, _ := r.Services.Services(l[0]).List(labels.Everything())
		return nil, len(svcs) > 0
	case 2:
		svc, err := r.Services.Services(l[1]).Get(l[0])
		if err != nil {
			return nil, false
		}
		return r.serviceRecords(q, svc), true
	case 3: // endpoint hostname of a headless service
		svc, err := r.Services.Services(l[2]).Get(l[1])
		if err != nil {
			return nil, false
		}
		var rrs []mdns.RR
		found := false
		for _, ep := range r.endpoints(svc) {
			if endpointHostname(ep) == l[0] {
				found = true
				rrs = append(rrs, addrRecords(q, ep.Addresses)...)
			}
		}
		return rrs, found
	case 4: // _port._proto.svc.ns
		if !strings.HasPrefix(l[0], "_") || !strings.HasPrefix(l[1], "_") {
			return nil, false
		}
		svc, err := r.Services.Services(l[3]).Get(l[2])
		if err != nil {
			return nil, false
		}
		if q.Qtype != mdns.TypeSRV {
			return nil, r.hasPort(svc, l[0][1:], l[1][1:])
		}
		rrs := r.srv(q, svc, l[0][1:], l[1][1:])
		return rrs, len(rrs) > 0
	}
	return nil, false
}

func (r *Resolver) hasPort(svc *corev1.Service, port, proto string) bool {
	for _, p := range svc.Spec.Ports {
		if strings.EqualFold(p.Name, port) && strings.EqualFold(string(p.Protocol), proto) {
			return true
		}
	}
	return false
}

func (r *Resolver) serviceRecords(q mdns.Question, svc *corev1.Service) []mdns.RR {
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		if q.Qtype == mdns.TypeCNAME || q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeAAAA {
			return []mdns.RR{&mdns.CNAME{Hdr: hdr(q.Name, mdns.TypeCNAME), Target: mdns.Fqdn(svc.Spec.ExternalName)}}
		}
		return nil
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		if q.Qtype == mdns.TypeSRV {
			return r.srvAll(q, svc)
		}
		var rrs []mdns.RR
		for _, ep := range r.endpoints(svc) {
			rrs = append(rrs, addrRecords(q, ep.Addresses)...)
		}
		return rrs
	default:
		if q.Qtype == mdns.TypeSRV {
			return r.srvAll(q, svc)
		}
		return addrRecords(q, svc.Spec.ClusterIPs)
	}
}

func (r *Resolver) srvAll(q mdns.Question, svc *corev1.Service) []mdns.RR {
	var rrs []mdns.RR
	for _, p := range svc.Spec.Ports {
		if p.Name == "" {
			continue
		}
		rrs = append(rrs, r.srv(q, svc, p.Name, strings.ToLower(string(p.Protocol)))...)
	}
	return rrs
}

func (r *Resolver) srv(q mdns.Question, svc *corev1.Service, port, proto string) []mdns.RR {
	var rrs []mdns.RR
	for _, p := range svc.Spec.Ports {
		if !strings.EqualFold(p.Name, port) || !strings.EqualFold(string(p.Protocol), proto) {
			continue
		}
		base := svc.Name + "." + svc.Namespace + ".svc." + r.Domain
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			rrs = append(rrs, &mdns.SRV{Hdr: hdr(q.Name, mdns.TypeSRV), Priority: 0, Weight: 100, Port: uint16(p.Port), Target: base})
			continue
		}
		for _, ep := range r.endpoints(svc) {
			host := endpointHostname(ep)
			rrs = append(rrs, &mdns.SRV{Hdr: hdr(q.Name, mdns.TypeSRV), Priority: 0, Weight: 100, Port: uint16(p.Port), Target: host + "." + base})
		}
	}
	return rrs
}

// endpoints returns the ready endpoints of a service (all of them when the
// service publishes not-ready addresses), in a stable order.
func (r *Resolver) endpoints(svc *corev1.Service) []discoveryv1.Endpoint {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name})
	slices, _ := r.Endpoints.EndpointSlices(svc.Namespace).List(sel)
	var out []discoveryv1.Endpoint
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			if ready || svc.Spec.PublishNotReadyAddresses {
				out = append(out, ep)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addresses[0] < out[j].Addresses[0] })
	return out
}

// endpointHostname is the endpoint's hostname or, as CoreDNS does, its
// address with dashes.
func endpointHostname(ep discoveryv1.Endpoint) string {
	if ep.Hostname != nil && *ep.Hostname != "" {
		return *ep.Hostname
	}
	return strings.NewReplacer(".", "-", ":", "-").Replace(ep.Addresses[0])
}

// pod handles a-b-c-d.ns.pod: the address is in the name ("pods insecure").
func (r *Resolver) pod(q mdns.Question, l []string) ([]mdns.RR, bool) {
	if len(l) != 2 {
		return nil, len(l) == 1
	}
	ip := net.ParseIP(strings.ReplaceAll(l[0], "-", "."))
	if ip == nil || ip.To4() == nil {
		return nil, false
	}
	return addrRecords(q, []string{ip.String()}), true
}

func addrRecords(q mdns.Question, ips []string) []mdns.RR {
	var rrs []mdns.RR
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			continue
		}
		if v4 := ip.To4(); v4 != nil && q.Qtype == mdns.TypeA {
			rrs = append(rrs, &mdns.A{Hdr: hdr(q.Name, mdns.TypeA), A: v4})
		} else if v4 == nil && q.Qtype == mdns.TypeAAAA {
			rrs = append(rrs, &mdns.AAAA{Hdr: hdr(q.Name, mdns.TypeAAAA), AAAA: ip})
		}
	}
	return rrs
}

// reverse answers PTR questions for Service ClusterIPs.
func (r *Resolver) reverse(q mdns.Question) ([]mdns.RR, bool) {
	ip := ptrToIP(q.Name)
	if ip == "" {
		return nil, false
	}
	svcs, _ := r.Services.List(labels.Everything())
	for _, svc := range svcs {
		for _, cip := range svc.Spec.ClusterIPs {
			if cip == ip {
				return []mdns.RR{&mdns.PTR{Hdr: hdr(q.Name, mdns.TypePTR), Ptr: svc.Name + "." + svc.Namespace + ".svc." + r.Domain}}, true
			}
		}
	}
	return nil, false
}

func ptrToIP(name string) string {
	rest, ok := strings.CutSuffix(strings.ToLower(name), ".in-addr.arpa.")
	if !ok {
		return ""
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return ""
	}
	for i, j := 0, 3; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			return ""
		}
	}
	return strings.Join(parts, ".")
}

func hdr(name string, t uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
}
