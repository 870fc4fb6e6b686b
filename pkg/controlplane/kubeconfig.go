package controlplane

import (
	"fmt"
	"os"

	"github.com/strata-dev/strata/pkg/controlplane/pki"
	"github.com/strata-dev/strata/pkg/fileutil"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// WriteKubeconfig writes a kubeconfig with the certificates embedded, so the
// file can be copied to another machine and still work.
func WriteKubeconfig(file, server, caFile string, client pki.Paths) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", file, err)
	}
	crt, err := os.ReadFile(client.CertFile)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", file, err)
	}
	key, err := os.ReadFile(client.KeyFile)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", file, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["strata"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos["strata"] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts["strata"] = &clientcmdapi.Context{Cluster: "strata", AuthInfo: "strata"}
	cfg.CurrentContext = "strata"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", file, err)
	}
	return fileutil.WriteAtomic(file, data, 0o600)
}
