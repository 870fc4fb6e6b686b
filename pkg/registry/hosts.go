package registry

import (
	"fmt"
	"path/filepath"

	"github.com/strata-dev/strata/pkg/fileutil"
)

// WriteContainerdHosts tells containerd (config_path) to pull HOST images
// from the registry at plain-HTTP endpoint URL.
func WriteContainerdHosts(hostsDir, host, url string) error {
	content := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", url, url)
	return fileutil.WriteAtomic(filepath.Join(hostsDir, host, "hosts.toml"), []byte(content), 0o644)
}

// WriteContainerdHostsTLS tells containerd to pull HOST images from the
// registry at HTTPS endpoint url, trusting caFile and presenting the
// client certificate and key in clientPEM (one file): how agents pull the
// cluster's images from the server, as their node. containerd reads the
// files at every pull, so the kubelet's rotations are picked up.
func WriteContainerdHostsTLS(hostsDir, host, url, caFile, clientPEM string) error {
	content := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n  client = %q\n", url, url, caFile, clientPEM)
	return fileutil.WriteAtomic(filepath.Join(hostsDir, host, "hosts.toml"), []byte(content), 0o644)
}
