// Package servingcsr approves kubelet serving certificate requests.
// Upstream's csrapproving controller approves only kubelet client
// certificates: serving certificates name addresses, and someone must check
// them against the Node before the cluster CA vouches for them (the API
// server verifies kubelets with that CA, so an agent's kubelet needs one
// for logs, exec and port-forward). This is that check, as
// kubelet-csr-approver does it.
package servingcsr

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// Signer is upstream's signer of kubelet serving certificates.
const Signer = "kubernetes.io/kubelet-serving"

// waitForAddresses is how long a request may wait for its Node to report
// addresses before it is left alone.
const waitForAddresses = 10 * time.Minute

// Reconciler approves or denies one CSR at a time; level-based: it looks
// only at the CSR and its Node as they are now.
type Reconciler struct {
	client.Client
	// Approvals updates the approval subresource.
	Approvals kubernetes.Interface
}

// SetupWithManager watches pending kubelet serving CSRs.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&certificatesv1.CertificateSigningRequest{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			csr, ok := o.(*certificatesv1.CertificateSigningRequest)
			return ok && csr.Spec.SignerName == Signer
		}))).
		Named("kubelet-serving-approver").
		Complete(r)
}

// Reconcile checks one CSR.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	csr := &certificatesv1.CertificateSigningRequest{}
	if err := r.Get(ctx, req.NamespacedName, csr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if csr.Spec.SignerName != Signer || decided(csr) {
		return ctrl.Result{}, nil
	}
	nodeName, err := check(csr)
	if err != nil {
		return ctrl.Result{}, r.decide(ctx, csr, false, err.Error())
	}
	n := &corev1.Node{}
	if err := r.Get(ctx, client.ObjectKey{Name: nodeName}, n); err != nil {
		if apierrors.IsNotFound(err) {
			return r.wait(ctx, csr, "node "+nodeName+" is not registered yet")
		}
		return ctrl.Result{}, err
	}
	if len(n.Status.Addresses) == 0 {
		return r.wait(ctx, csr, "node "+nodeName+" has not reported its addresses yet")
	}
	if err := checkNames(csr, n); err != nil {
		return ctrl.Result{}, r.decide(ctx, csr, false, err.Error())
	}
	log.Info("Approving kubelet serving certificate", "csr", csr.Name, "node", nodeName)
	return ctrl.Result{}, r.decide(ctx, csr, true, "the names and addresses are node "+nodeName+"'s, the requester is that node")
}

// wait requeues a request whose Node is not ready to be checked.
func (r *Reconciler) wait(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, why string) (ctrl.Result, error) {
	if time.Since(csr.CreationTimestamp.Time) > waitForAddresses {
		ctrl.LoggerFrom(ctx).Info("Leaving kubelet serving CSR pending", "csr", csr.Name, "reason", why)
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: 2 * time.Second}, nil
}

func (r *Reconciler) decide(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, approve bool, message string) error {
	cond := certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue,
		Reason: "StrataKubeletServingDenied", Message: message, LastUpdateTime: metav1.Now(),
	}
	if approve {
		cond.Type, cond.Reason = certificatesv1.CertificateApproved, "StrataKubeletServingApproved"
	}
	csr = csr.DeepCopy()
	csr.Status.Conditions = append(csr.Status.Conditions, cond)
	if _, err := r.Approvals.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update approval of CSR %s: %w", csr.Name, err)
	}
	return nil
}

func decided(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied {
			return true
		}
	}
	return false
}

// check verifies what the CSR alone can say: a node asks for a serving
// certificate in its own name. It returns the node's name.
func check(csr *certificatesv1.CertificateSigningRequest) (string, error) {
	nodeName, ok := strings.CutPrefix(csr.Spec.Username, "system:node:")
	if !ok || nodeName == "" || !slices.Contains(csr.Spec.Groups, "system:nodes") {
		return "", fmt.Errorf("requested by %q, not by a node (system:node:<name> in group system:nodes)", csr.Spec.Username)
	}
	req, err := parse(csr.Spec.Request)
	if err != nil {
		return "", err
	}
	if req.Subject.CommonName != csr.Spec.Username || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		return "", fmt.Errorf("subject CN=%q O=%v is not the requester's (CN=%s, O=[system:nodes])", req.Subject.CommonName, req.Subject.Organization, csr.Spec.Username)
	}
	serverAuth := false
	for _, u := range csr.Spec.Usages {
		switch u {
		case certificatesv1.UsageServerAuth:
			serverAuth = true
		case certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment:
		default:
			return "", fmt.Errorf("usage %q is not for a serving certificate", u)
		}
	}
	if !serverAuth {
		return "", fmt.Errorf("usages %v lack server auth", csr.Spec.Usages)
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return "", fmt.Errorf("email or URI names are not allowed in a kubelet serving certificate")
	}
	if len(req.IPAddresses)+len(req.DNSNames) == 0 {
		return "", fmt.Errorf("no DNS name or IP address to serve")
	}
	return nodeName, nil
}

// checkNames verifies every name against the Node's reported addresses.
func checkNames(csr *certificatesv1.CertificateSigningRequest, n *corev1.Node) error {
	req, err := parse(csr.Spec.Request)
	if err != nil {
		return err
	}
	ips, names := map[string]bool{}, map[string]bool{n.Name: true}
	for _, a := range n.Status.Addresses {
		switch a.Type {
		case corev1.NodeInternalIP, corev1.NodeExternalIP:
			if ip := net.ParseIP(a.Address); ip != nil {
				ips[ip.String()] = true
			}
		case corev1.NodeHostName, corev1.NodeInternalDNS, corev1.NodeExternalDNS:
			names[a.Address] = true
		}
	}
	for _, ip := range req.IPAddresses {
		if !ips[ip.String()] {
			return fmt.Errorf("IP address %s is not one of node %s's addresses", ip, n.Name)
		}
	}
	for _, d := range req.DNSNames {
		if !names[d] {
			return fmt.Errorf("DNS name %s is not one of node %s's names", d, n.Name)
		}
	}
	return nil
}

func parse(data []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("the request is not a PEM CERTIFICATE REQUEST")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse the request: %w", err)
	}
	return req, nil
}

// Run runs the approver alone in a manager until ctx ends.
func Run(ctx context.Context, rc *rest.Config) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(rc, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		return fmt.Errorf("kubelet serving approver: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	if err := (&Reconciler{Client: mgr.GetClient(), Approvals: cs}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("kubelet serving approver: %w", err)
	}
	return mgr.Start(ctx)
}
