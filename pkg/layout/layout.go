// Package layout owns every path of a Strata node: the persistent data dir
// (etcd, PKI, registry blobs, containerd content, logs) and the runtime dir
// under /run (sockets and state that a reboot clears). Nothing else joins
// these paths, so the layout can be read, and changed, in one place.
//
// It also names the environment variables through which the server hands
// paths to its helper binary (the wasm shim): both sides
// import them from here. The package depends on the standard library
// only, so the static helper binaries can use it.
package layout

import (
	"fmt"
	"path/filepath"
)

// Environment variables shared between the server and its helpers.
const (
	// EnvDataDir picks the data dir for every strata subcommand.
	EnvDataDir = "STRATA_DATA_DIR"
	// EnvWasmCacheDir and EnvWasmSocketDir tell the wasm shim where to keep
	// compiled modules and its ttrpc sockets; EnvWasmShimScope=node makes
	// one shim serve every wasm pod.
	EnvWasmCacheDir  = "STRATA_WASM_CACHE_DIR"
	EnvWasmSocketDir = "STRATA_WASM_SOCKET_DIR"
	EnvWasmShimScope = "STRATA_WASM_SHIM_SCOPE"
)

// DefaultDataDir is where `strata server` keeps its state unless told.
const DefaultDataDir = "/var/lib/strata"

// runRoot holds one runtime dir per data dir.
const runRoot = "/run/strata"

// Layout is the set of paths of one data dir.
type Layout struct {
	// DataDir is the absolute data dir.
	DataDir string
}

// New returns the layout of dataDir, made absolute.
func New(dataDir string) (Layout, error) {
	if dataDir == "" {
		return Layout{}, fmt.Errorf("the data dir is empty: pass --data-dir (e.g. %s) or set %s", DefaultDataDir, EnvDataDir)
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return Layout{}, fmt.Errorf("data dir %q: %w", dataDir, err)
	}
	return Layout{DataDir: abs}, nil
}

func (l Layout) data(parts ...string) string {
	return filepath.Join(append([]string{l.DataDir}, parts...)...)
}

// RunDir is the runtime dir of this data dir. Its name is a short hash:
// socket paths must stay under 108 bytes whatever the data dir is.
func (l Layout) RunDir() string { return filepath.Join(runRoot, shortID(l.DataDir)) }

// Lock is the file a running server holds an exclusive lock on.
func (l Layout) Lock() string { return l.data("strata.lock") }

// Logs.
func (l Layout) LogDir() string        { return l.data("logs") }
func (l Layout) StrataLog() string     { return l.data("logs", "strata.log") }
func (l Layout) EtcdLog() string       { return l.data("logs", "etcd.log") }
func (l Layout) ContainerdLog() string { return l.data("logs", "containerd.log") }

// Control plane.
func (l Layout) EtcdDir() string           { return l.data("etcd") }
func (l Layout) PKIDir() string            { return l.data("pki") }
func (l Layout) CAFile() string            { return l.data("pki", "ca.crt") }
func (l Layout) ServiceAccountKey() string { return l.data("pki", "service-account.key") }
func (l Layout) AdmissionConfig() string   { return l.data("config", "admission.yaml") }
func (l Layout) AuditPolicy() string       { return l.data("config", "audit-policy.yaml") }
func (l Layout) AuthnConfig() string       { return l.data("config", "authentication.yaml") }
func (l Layout) AuditLog() string          { return l.data("logs", "audit.log") }
func (l Layout) SchedulerConfig() string   { return l.data("scheduler", "config.yaml") }

// EncryptionConfig holds the keys Secrets are encrypted with in etcd.
func (l Layout) EncryptionConfig() string { return l.data("pki", "encryption-config.yaml") }

// Kubeconfig is the kubeconfig of one in-process identity (kubelet,
// kube-proxy, scheduler, strata, ...).
func (l Layout) Kubeconfig(identity string) string {
	return l.data("kubeconfigs", identity+".kubeconfig")
}

// AdminKubeconfig is the admin kubeconfig users and tools read; the server
// publishes it once admission is enforced.
func (l Layout) AdminKubeconfig() string { return l.data("admin.kubeconfig") }

// Registry is the embedded OCI registry's storage.
func (l Layout) RegistryDir() string { return l.data("registry") }

// SigningKey returns the server's image signing key pair and the file
// with the private key's password (cosign's layout: PREFIX.key/.pub).
func (l Layout) SigningKey() (privateKey, publicKey, password string) {
	return l.data("signing", "cosign.key"), l.data("signing", "cosign.pub"), l.data("signing", "cosign.password")
}

// SigningKeyPrefix is the path prefix signing.WriteKeyPair writes to.
func (l Layout) SigningKeyPrefix() string { return l.data("signing", "cosign") }

// Node: containerd. Content and snapshots persist; state and the socket
// are runtime.
func (l Layout) ContainerdRoot() string    { return l.data("containerd", "root") }
func (l Layout) ContainerdConfig() string  { return l.data("containerd", "config.toml") }
func (l Layout) ContainerdConfDir() string { return l.data("containerd", "conf.d") }
func (l Layout) RegistryHostsDir() string  { return l.data("containerd", "certs.d") }
func (l Layout) ContainerdState() string   { return filepath.Join(l.RunDir(), "containerd") }
func (l Layout) ContainerdSocket() string  { return filepath.Join(l.RunDir(), "containerd.sock") }

// CRISandboxesDir is where containerd's CRI keeps each pod sandbox's
// volatile files, its /dev/shm mount among them.
func (l Layout) CRISandboxesDir() string {
	return filepath.Join(l.ContainerdState(), "io.containerd.grpc.v1.cri", "sandboxes")
}
func (l Layout) WasmShimSocketDir() string    { return filepath.Join(l.RunDir(), "s") }
func (l Layout) NRISocket() string            { return filepath.Join(l.RunDir(), "nri.sock") }
func (l Layout) NRIPluginDir() string         { return l.data("nri", "plugins") }
func (l Layout) NRIConfigDir() string         { return l.data("nri", "conf.d") }
func (l Layout) WasmShimCacheDir() string     { return l.data("wasm-cache") }
func (l Layout) FunctionWasmCache() string    { return l.data("serverless", "wasm-cache") }
func (l Layout) CNIConfDir() string           { return l.data("cni", "net.d") }
func (l Layout) CNIIPAMDir() string           { return l.data("cni", "ipam") }
func (l Layout) KubeletDir() string           { return l.data("kubelet") }
func (l Layout) KubeletCertDir() string       { return l.data("kubelet", "pki") }
func (l Layout) PluginRegistryDir() string    { return l.data("kubelet", "plugins_registry") }
func (l Layout) PluginDir(name string) string { return l.data("kubelet", "plugins", name) }

// DRA GPU driver: prepared claims persist (the kubelet may ask again after
// a restart); CDI specs are runtime state, rewritten by the driver.
func (l Layout) DRAStateDir() string { return l.data("dra") }
func (l Layout) CDIDir() string      { return filepath.Join(l.RunDir(), "cdi") }

// shortID is a 32-bit FNV-1a hash of the data dir, in hex.
func shortID(dataDir string) string {
	h := uint32(2166136261)
	for _, b := range []byte(dataDir) {
		h = (h ^ uint32(b)) * 16777619
	}
	return fmt.Sprintf("%08x", h)
}
