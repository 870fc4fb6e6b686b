// Package controlplane runs the Kubernetes control plane of a Strata server in
// one process: embedded etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler, with the PKI and kubeconfigs they share.
package controlplane

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/strata-dev/strata/pkg/controlplane/pki"
	"github.com/strata-dev/strata/pkg/diskspace"
	"github.com/strata-dev/strata/pkg/fileutil"
	"github.com/strata-dev/strata/pkg/layout"
)

// Config is what the control plane needs to know about the cluster.
type Config struct {
	// Layout places etcd, the PKI, kubeconfigs and logs under the data dir.
	Layout layout.Layout
	// BindAddress is where kube-apiserver listens; AdvertiseAddress is the
	// address that pods and other nodes use to reach it.
	BindAddress      net.IP
	AdvertiseAddress net.IP
	APIPort          int
	EtcdPort         int
	ServiceCIDR      string
	ClusterCIDR      string
	ClusterDomain    string
	NodeName         string
	// ExtraSANs are added to the API server's serving certificate.
	ExtraSANs []string
	// PodSecurityDefault is the Pod Security level enforced in namespaces
	// that do not set their own (restricted unless set).
	PodSecurityDefault string
	// Profiling turns on kube-apiserver's /debug/pprof handlers.
	Profiling bool
	// FeatureGates are the user's Kubernetes feature gates (A=true,B=false),
	// set after Strata's DefaultFeatureGates in every component.
	FeatureGates string
	// NodeCIDRMaskSize is the size of each node's share of ClusterCIDR.
	NodeCIDRMaskSize int
	// NodeMonitorGracePeriod is how long a silent node stays Ready;
	// NodeGrace is how long its pods stay bound once it is NotReady or
	// unreachable (the default toleration of those taints). 0 keeps
	// upstream's defaults.
	NodeMonitorGracePeriod, NodeGrace time.Duration
	// WebhookHost is the host:port of Strata's admission webhooks: the API
	// server presents its webhook client certificate there, and only
	// there ("" presents none).
	WebhookHost string
	// Disk, when set, refuses writes while the data dir is low on space
	// and reports it in /readyz.
	Disk *diskspace.Guard

	certs *certSet
}

// Paths under the data dir that other packages read.
func (c *Config) PKIDir() string              { return c.Layout.PKIDir() }
func (c *Config) CAFile() string              { return c.Layout.CAFile() }
func (c *Config) AdminKubeconfig() string     { return c.Layout.AdminKubeconfig() }
func (c *Config) KubeletKubeconfig() string   { return c.kubeconfigPath("kubelet") }
func (c *Config) KubeProxyKubeconfig() string { return c.kubeconfigPath("kube-proxy") }
func (c *Config) SchedulerKubeconfig() string { return c.kubeconfigPath("scheduler") }

// PublishAdminKubeconfig copies the admin kubeconfig that EnsurePKI wrote
// to AdminKubeconfig, where users and tools look for it. The server calls
// it once the cluster enforces its admission policies, so nobody can
// create objects in the window before.
func (c *Config) PublishAdminKubeconfig() error {
	data, err := os.ReadFile(c.kubeconfigPath("admin"))
	if err != nil {
		return fmt.Errorf("publish admin kubeconfig: %w", err)
	}
	return fileutil.WriteAtomic(c.AdminKubeconfig(), data, 0o600)
}

// CAPEM is the cluster CA certificate, for clients that must trust it.
func (c *Config) CAPEM() ([]byte, error) {
	pem, err := os.ReadFile(c.CAFile())
	if err != nil {
		return nil, fmt.Errorf("read cluster CA: %w", err)
	}
	return pem, nil
}

// SupervisorKubeconfig is used by Strata's own in-process components.
func (c *Config) SupervisorKubeconfig() string { return c.kubeconfigPath("strata") }

// KubeletServingCert is the kubelet's TLS certificate, signed by the cluster CA.
func (c *Config) KubeletServingCert() pki.Paths { return c.certs.kubeletServing }

// RegistryServingCert is the OCI registry's TLS certificate for other
// nodes' pulls, with the API server's names and addresses.
func (c *Config) RegistryServingCert() pki.Paths { return c.certs.registry }

// WebhookClientCommonName is the name in the certificate the API server
// presents to Strata's webhooks, the only client they serve.
const WebhookClientCommonName = "kube-apiserver-webhook-client"

// MetricsServingCert is the TLS certificate of Strata's metrics listener.
func (c *Config) MetricsServingCert() pki.Paths { return c.certs.metrics }

// WebhookServingCert is the TLS certificate of Strata's admission
// webhooks, signed by the cluster CA, which the API server trusts.
func (c *Config) WebhookServingCert() pki.Paths { return c.certs.webhook }

// ServerURL is the loopback URL the in-process components use.
func (c *Config) ServerURL() string { return fmt.Sprintf("https://127.0.0.1:%d", c.APIPort) }

func (c *Config) kubeconfigPath(name string) string { return c.Layout.Kubeconfig(name) }

// EtcdEndpoint is etcd's client address on loopback.
func (c *Config) EtcdEndpoint() string { return fmt.Sprintf("127.0.0.1:%d", c.EtcdPort) }

// KubernetesServiceIP is the first address of the service range, the
// ClusterIP of the `kubernetes` Service.
func (c *Config) KubernetesServiceIP() (net.IP, error) { return nthIP(c.ServiceCIDR, 1) }

// DNSServiceIP is the ClusterIP of kube-dns, the tenth address as in kubeadm.
func (c *Config) DNSServiceIP() (net.IP, error) { return nthIP(c.ServiceCIDR, 10) }

func nthIP(cidr string, n int) (net.IP, error) {
	_, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, fmt.Errorf("service CIDR %q: %w", cidr, err)
	}
	ip := ipnet.IP.To4()
	if ip == nil {
		return nil, fmt.Errorf("service CIDR %q: only IPv4 is supported", cidr)
	}
	out := make(net.IP, 4)
	copy(out, ip)
	out[3] += byte(n)
	return out, nil
}

type certSet struct {
	ca *pki.CA
	// etcdCA signs only etcd's serving certificate and the API server's
	// client certificate for it: etcd trusts no other client, so a
	// certificate of the cluster CA (a node's, a user's, even an
	// administrator's) does not open the raw datastore.
	etcdCA         *pki.CA
	apiserver      pki.Paths
	kubeletClient  pki.Paths
	etcdServer     pki.Paths
	etcdClient     pki.Paths
	kubeletServing pki.Paths
	webhook        pki.Paths
	registry       pki.Paths
	metrics        pki.Paths
	webhookClient  pki.Paths
	saKey          string
}

// issued is one certificate to issue and where its paths go.
type issued struct {
	into *pki.Paths
	cert pki.Cert
}

// issueAll issues (or keeps) each certificate with ca.
func issueAll(ca *pki.CA, dir string, certs []issued) error {
	for _, i := range certs {
		p, err := ca.Issue(dir, i.cert)
		if err != nil {
			return err
		}
		*i.into = p
	}
	return nil
}

// EnsurePKI creates (or reuses) the cluster CA, every component certificate
// and the kubeconfigs, including DATA/admin.kubeconfig.
func (c *Config) EnsurePKI() error {
	dir := c.PKIDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	ca, err := pki.LoadOrCreateCA(dir, "ca", "strata-ca")
	if err != nil {
		return err
	}
	svcIP, err := c.KubernetesServiceIP()
	if err != nil {
		return err
	}
	hostname, _ := os.Hostname()
	apiIPs := []net.IP{net.IPv4(127, 0, 0, 1), svcIP, c.AdvertiseAddress}
	apiNames := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc." + c.ClusterDomain, hostname}
	for _, san := range c.ExtraSANs {
		if ip := net.ParseIP(san); ip != nil {
			apiIPs = append(apiIPs, ip)
		} else {
			apiNames = append(apiNames, san)
		}
	}
	etcdCA, err := pki.LoadOrCreateCA(dir, "etcd-ca", "strata-etcd-ca")
	if err != nil {
		return err
	}
	s := &certSet{ca: ca, etcdCA: etcdCA, saKey: c.Layout.ServiceAccountKey()}
	if err := issueAll(ca, dir, []issued{
		{&s.apiserver, pki.Cert{Name: "apiserver", CommonName: "kube-apiserver", DNSNames: apiNames, IPs: apiIPs, Server: true, Chain: true}},
		{&s.registry, pki.Cert{Name: "registry-serving", CommonName: "strata-registry", DNSNames: apiNames, IPs: apiIPs, Server: true}},
		{&s.kubeletClient, pki.Cert{Name: "apiserver-kubelet-client", CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}, Client: true}},
		{&s.webhookClient, pki.Cert{Name: "apiserver-webhook-client", CommonName: WebhookClientCommonName, Client: true}},
		{&s.webhook, pki.Cert{Name: "webhook-serving", CommonName: "strata-webhook", DNSNames: []string{"localhost", "strata-webhook.strata-system.svc"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true}},
		{&s.metrics, pki.Cert{Name: "metrics-serving", CommonName: "strata-metrics", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true}},
		{&s.kubeletServing, pki.Cert{Name: "kubelet-serving", CommonName: "system:node:" + c.NodeName, DNSNames: []string{c.NodeName, "localhost"}, IPs: []net.IP{c.AdvertiseAddress, net.IPv4(127, 0, 0, 1)}, Server: true}},
	}); err != nil {
		return err
	}
	// Issue re-issues a certificate another CA signed: a data dir from
	// before etcd had its own CA moves over at the next start.
	if err := issueAll(etcdCA, dir, []issued{
		{&s.etcdServer, pki.Cert{Name: "etcd-server", CommonName: "etcd", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Client: true}},
		{&s.etcdClient, pki.Cert{Name: "apiserver-etcd-client", CommonName: "kube-apiserver-etcd-client", Client: true}},
	}); err != nil {
		return err
	}
	if err := pki.LoadOrCreateKey(s.saKey); err != nil {
		return err
	}
	c.certs = s

	// One client certificate and kubeconfig per identity, named as the
	// upstream RBAC bootstrap policy and the Node authorizer expect.
	clients := []struct {
		file string
		cert pki.Cert
	}{
		{c.kubeconfigPath("admin"), pki.Cert{Name: "admin", CommonName: "strata-admin", Organization: []string{"system:masters"}}},
		{c.kubeconfigPath("controller-manager"), pki.Cert{Name: "controller-manager", CommonName: "system:kube-controller-manager"}},
		{c.kubeconfigPath("scheduler"), pki.Cert{Name: "scheduler", CommonName: "system:kube-scheduler"}},
		{c.KubeletKubeconfig(), pki.Cert{Name: "kubelet", CommonName: "system:node:" + c.NodeName, Organization: []string{"system:nodes"}}},
		{c.KubeProxyKubeconfig(), pki.Cert{Name: "kube-proxy", CommonName: "system:kube-proxy"}},
		{c.SupervisorKubeconfig(), pki.Cert{Name: "strata", CommonName: "system:strata", Organization: []string{"system:masters"}}},
	}
	for _, cl := range clients {
		cl.cert.Client = true
		p, err := ca.Issue(dir, cl.cert)
		if err != nil {
			return err
		}
		if err := WriteKubeconfig(cl.file, c.ServerURL(), ca.CertFile, p); err != nil {
			return err
		}
	}
	return nil
}

// runtimeConfig enables the beta API versions those gates need.
const runtimeConfig = "scheduling.k8s.io/v1beta1=true"
