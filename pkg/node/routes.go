package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RouteProtocol marks the routes Routes owns (rtnetlink's protocol field,
// as routing daemons mark theirs), so it can find and remove stale ones
// without touching anyone else's.
const RouteProtocol netlink.RouteProtocol = 83

// resyncPeriod re-checks routes someone else may have removed.
const resyncPeriod = time.Minute

// Routes keeps, on this node, a route to every other node's pod range:
// via that node's InternalIP when they share a link ("host-gw", no
// encapsulation), or through the VXLAN device otherwise (VXLAN decides).
type Routes struct {
	Client   kubernetes.Interface
	NodeName string
	// VXLAN is VXLANAuto (""), VXLANAlways or VXLANNever.
	VXLAN string
}

// Run watches Nodes and reconciles the routes until ctx ends.
func (r *Routes) Run(ctx context.Context, ready func()) error {
	factory := informers.NewSharedInformerFactory(r.Client, resyncPeriod)
	nodes := factory.Core().V1().Nodes()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()
	// One key: every change re-reads all nodes, which is cheap at the
	// sizes a host-gw network has.
	enqueue := func(any) { queue.Add("routes") }
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, DeleteFunc: enqueue,
		// Every node reports its status every few seconds; only a new
		// range or address moves a route (the resync re-checks the rest).
		UpdateFunc: func(o, n any) {
			old, cur := o.(*corev1.Node), n.(*corev1.Node)
			if old.Spec.PodCIDR != cur.Spec.PodCIDR || !InternalIP(old).Equal(InternalIP(cur)) || old.ResourceVersion == cur.ResourceVersion {
				enqueue(n)
			}
		},
	}); err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	defer func() {
		if err := RemoveVXLAN(); err != nil {
			klog.ErrorS(err, "Remove the tunnel device")
		}
	}()
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced) {
		return nil
	}
	ready()
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	for {
		key, quit := queue.Get()
		if quit {
			return nil
		}
		list, _ := nodes.Lister().List(labels.Everything())
		if err := r.sync(list); err != nil {
			klog.ErrorS(err, "Sync routes to other nodes' pods; retrying")
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
}

// sync makes this node's routes exactly the wanted ones.
func (r *Routes) sync(nodes []*corev1.Node) error {
	var errs []error
	type peer struct {
		name string
		ip   net.IP
		cidr *net.IPNet
	}
	var peers []peer
	var link netlink.Link
	for _, n := range nodes {
		ip := InternalIP(n)
		if n.Spec.PodCIDR == "" || ip == nil {
			continue
		}
		_, cidr, err := net.ParseCIDR(n.Spec.PodCIDR)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: pod CIDR %q: %w", n.Name, n.Spec.PodCIDR, err))
			continue
		}
		if n.Name != r.NodeName {
			peers = append(peers, peer{n.Name, ip, cidr})
			continue
		}
		// Every node has the tunnel device once it has a range and an
		// address, whatever its mode: peers may tunnel to it.
		if link, err = ensureVXLAN(ip, cidr); err != nil {
			errs = append(errs, err)
		}
	}
	want := map[string]net.IP{} // pod range -> gateway
	tunnelled := map[string]bool{}
	for _, p := range peers {
		tunnel := r.VXLAN == VXLANAlways
		if !tunnel {
			if err := onLink(p.ip); err != nil {
				if r.VXLAN == VXLANNever {
					errs = append(errs, fmt.Errorf("node %s: %w; with --vxlan never it is unreachable", p.name, err))
					continue
				}
				tunnel = true
			}
		}
		if !tunnel {
			rt := &netlink.Route{Dst: p.cidr, Gw: p.ip, Protocol: RouteProtocol}
			if err := netlink.RouteReplace(rt); err != nil {
				errs = append(errs, fmt.Errorf("route %s via %s: %w", p.cidr, p.ip, err))
			}
			want[p.cidr.String()] = p.ip
			continue
		}
		if link == nil {
			errs = append(errs, fmt.Errorf("node %s: no tunnel yet (this node has no pod range or address)", p.name))
			continue
		}
		if err := tunnelTo(link, p.ip, p.cidr); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", p.name, err))
			continue
		}
		ip, mac := vtep(p.cidr)
		want[p.cidr.String()] = ip
		tunnelled[mac.String()] = true
	}
	if link != nil {
		if err := pruneTunnel(link, tunnelled); err != nil {
			errs = append(errs, err)
		}
	}
	have, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list routes: %w", err))...)
	}
	for _, rt := range have {
		if rt.Dst == nil {
			continue
		}
		if gw, ok := want[rt.Dst.String()]; ok && gw.Equal(rt.Gw) {
			continue
		}
		if err := netlink.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("remove stale route %s: %w", rt.Dst, err))
		} else {
			klog.InfoS("Removed route to a node that left, moved or changed mode", "podCIDR", rt.Dst, "via", rt.Gw)
		}
	}
	return errors.Join(errs...)
}

// onLink checks that gw is reachable without a router, as host-gw
// routing needs.
func onLink(gw net.IP) error {
	routes, err := netlink.RouteGet(gw)
	if err != nil {
		return fmt.Errorf("no route to node address %s: %w", gw, err)
	}
	for _, rt := range routes {
		if rt.Gw != nil {
			return fmt.Errorf("node address %s is reached through router %s, not on a shared link", gw, rt.Gw)
		}
	}
	return nil
}

// InternalIP is a node's first InternalIP address.
func InternalIP(n *corev1.Node) net.IP {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip := net.ParseIP(a.Address); ip != nil && ip.To4() != nil {
				return ip.To4()
			}
		}
	}
	return nil
}

// WaitPodCIDR waits until node IPAM has given the node its pod range.
func WaitPodCIDR(ctx context.Context, client kubernetes.Interface, name string) (string, error) {
	var cidr string
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		cidr = n.Spec.PodCIDR
		return cidr != "", nil
	})
	if err != nil {
		return "", fmt.Errorf("wait for node %s's pod CIDR (the controller manager's node IPAM assigns it): %w", name, err)
	}
	return cidr, nil
}

// ClaimPodCIDR makes sure node name has podCIDR before its kubelet
// registers: it creates the Node with it (and labels, which the kubelet
// only sets when it creates the Node itself) or sets it on a Node that has
// none. Node IPAM then marks the range taken. A Node that already has
// another range is an error: its bridge would not match.
func ClaimPodCIDR(ctx context.Context, client kubernetes.Interface, name, podCIDR string, nodeLabels map[string]string) error {
	n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = client.CoreV1().Nodes().Create(ctx, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: nodeLabels},
			Spec:       corev1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: []string{podCIDR}},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return ClaimPodCIDR(ctx, client, name, podCIDR, nodeLabels)
		}
	case err != nil:
	case n.Spec.PodCIDR == podCIDR:
		return nil
	case n.Spec.PodCIDR != "":
		return fmt.Errorf("node %s has pod range %s, but this node's bridge uses %s: the cluster CIDR or node mask size changed; delete the Node (kubectl delete node %s) to let it re-register", name, n.Spec.PodCIDR, podCIDR, name)
	default:
		n.Spec.PodCIDR, n.Spec.PodCIDRs = podCIDR, []string{podCIDR}
		_, err = client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("give node %s its pod range %s: %w", name, podCIDR, err)
	}
	return nil
}
