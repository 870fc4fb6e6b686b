package controlplane

import (
	"context"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/rest"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

// apiserverArgs are kube-apiserver's flags for a Strata cluster.
func (c *Config) apiserverArgs(etcdEndpoint, admissionConfig string) []string {
	s := c.certs
	return []string{
		"--admission-control-config-file=" + admissionConfig,
		"--etcd-servers=https://" + etcdEndpoint,
		"--etcd-cafile=" + s.ca.CertFile,
		"--etcd-certfile=" + s.etcdClient.CertFile,
		"--etcd-keyfile=" + s.etcdClient.KeyFile,
		"--bind-address=" + c.BindAddress.String(),
		"--advertise-address=" + c.AdvertiseAddress.String(),
		"--secure-port=" + strconv.Itoa(c.APIPort),
		"--tls-cert-file=" + s.apiserver.CertFile,
		"--tls-private-key-file=" + s.apiserver.KeyFile,
		"--client-ca-file=" + s.ca.CertFile,
		"--anonymous-auth=false",
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction,PodSecurity",
		"--allow-privileged=true",
		"--service-cluster-ip-range=" + c.ServiceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc." + c.ClusterDomain,
		"--service-account-key-file=" + s.saKey,
		"--service-account-signing-key-file=" + s.saKey,
		"--kubelet-client-certificate=" + s.kubeletClient.CertFile,
		"--kubelet-client-key=" + s.kubeletClient.KeyFile,
		"--kubelet-certificate-authority=" + s.ca.CertFile,
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--profiling=" + strconv.FormatBool(c.Profiling),
		"--enable-priority-and-fairness=true",
		"--feature-gates=" + c.featureGates(),
		"--runtime-config=" + runtimeConfig,
	}
}

// RunAPIServer runs kube-apiserver until ctx is done. It returns an error at
// once if the configuration is invalid, and otherwise blocks.
func RunAPIServer(ctx context.Context, c *Config, etcdEndpoint string, extraArgs []string) error {
	admissionConfig, err := c.writeAdmissionConfig()
	if err != nil {
		return err
	}
	s := apiserveroptions.NewServerRunOptions()
	args := append(c.apiserverArgs(etcdEndpoint, admissionConfig), extraArgs...)
	if err := parseComponentFlags("kube-apiserver", s.Flags(), args); err != nil {
		return err
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-apiserver feature gates: %w", err)
	}
	// The loopback clients inside the apiserver should not print warnings
	// about their own requests.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	completed, err := s.Complete(ctx)
	if err != nil {
		return fmt.Errorf("kube-apiserver options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return fmt.Errorf("kube-apiserver options: %w", errors.NewAggregate(errs))
	}
	if err := apiserverapp.Run(ctx, completed); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	return nil
}
