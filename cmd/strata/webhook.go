package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	"github.com/strata-dev/strata/pkg/admission"
	"github.com/strata-dev/strata/pkg/admission/imagepolicy"
	"github.com/strata-dev/strata/pkg/version"
)

func newWebhookCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Run image signature admission in an existing cluster",
		Long: `strata server runs image signature admission itself. To use it in another
cluster, print the manifests and apply them:

  strata webhook manifests --image registry.example.com/strata:` + version.Version + ` | kubectl apply -f -

The Deployment runs "strata webhook serve".`,
	}
	cmd.AddCommand(newWebhookServeCommand(), newWebhookManifestsCommand())
	return cmd
}

func newWebhookServeCommand() *cobra.Command {
	var (
		kubeconfig, certDir string
		port                int
		unmatched           string
		o                   = imagepolicy.DefaultOptions()
	)
	cmd := &cobra.Command{
		Use:   "serve --cert-dir DIR",
		Short: "Serve the image policy webhooks and the ClusterImagePolicy controller",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := imagepolicy.ParseUnmatched(unmatched)
			if err != nil {
				return fmt.Errorf("--%w", err)
			}
			if err := imagepolicy.CheckTimeout(o.Timeout); err != nil {
				return err
			}
			o.Unmatched = u
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			rules.ExplicitPath = kubeconfig
			rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
			if err != nil {
				return fmt.Errorf("kubeconfig: %w (pass --kubeconfig, or run in a pod)", err)
			}
			ctrl.SetLogger(klog.NewKlogr())
			mgr, err := admission.NewManager(rc, webhook.Options{Port: port, CertDir: certDir, CertName: "tls.crt", KeyName: "tls.key"}, o)
			if err != nil {
				return err
			}
			return mgr.Start(ctrl.SetupSignalHandler())
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig (default: in-cluster, then $KUBECONFIG)")
	f.StringVar(&certDir, "cert-dir", "/tls", "directory with tls.crt and tls.key for the webhook server")
	f.IntVar(&port, "port", 9443, "webhook port")
	f.StringVar(&unmatched, "unmatched-images", string(o.Unmatched), "images that no ClusterImagePolicy covers are: deny, warn or allow")
	f.DurationVar(&o.Timeout, "image-verify-timeout", o.Timeout, "deadline for the registry work of one admission request")
	f.DurationVar(&o.CacheTTL, "image-cache-ttl", o.CacheTTL, "how long a verified digest stays admitted without asking the registry")
	return cmd
}

func newWebhookManifestsCommand() *cobra.Command {
	o := admission.InstallOptions{Namespace: "strata-system"}
	cmd := &cobra.Command{
		Use:   "manifests --image IMAGE",
		Short: "Print the manifests that install image signature admission into a cluster",
		Long: `Prints the ClusterImagePolicy CRD, RBAC, a Deployment and Service running
"strata webhook serve" from --image, a TLS Secret with a newly generated CA and
serving certificate, and the webhook configurations trusting that CA. Each run
makes new certificates; apply its whole output.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Image == "" {
				return fmt.Errorf("--image is required: an image whose entrypoint is the strata binary")
			}
			objs, err := admission.InstallManifests(o)
			if err != nil {
				return err
			}
			for _, obj := range objs {
				data, err := yaml.Marshal(obj)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "---\n%s", data)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Namespace, "namespace", o.Namespace, "namespace for the webhook Deployment")
	f.StringVar(&o.Image, "image", "", "image that runs strata (entrypoint: the strata binary)")
	f.StringSliceVar(&o.Args, "serve-args", nil, "extra flags for strata webhook serve, e.g. --serve-args=--unmatched-images=warn")
	return cmd
}
