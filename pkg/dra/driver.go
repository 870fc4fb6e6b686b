package dra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"
)

// DefaultCDIDir is where container runtimes look for transient CDI specs.
const DefaultCDIDir = "/var/run/cdi"

// Config configures the node's DRA GPU driver.
type Config struct {
	// NodeName is the node the driver runs on and the name of its pool.
	NodeName string
	// Client reads ResourceClaims and pods and writes ResourceSlices (the
	// node's credentials suffice under the Node authorizer).
	Client kubernetes.Interface
	// RegistrarDir is the kubelet's plugin registration directory,
	// <kubelet root>/plugins_registry.
	RegistrarDir string
	// PluginDataDir holds the driver's gRPC socket,
	// <kubelet root>/plugins/gpu.strata.dev.
	PluginDataDir string
	// CDIDir receives the claims' CDI spec files (default /var/run/cdi).
	CDIDir string
	// StateDir holds the checkpoint of prepared claims. Required.
	StateDir string
	// Inventory selects the GPU backend.
	Inventory Options
	// GPUs, when set, is the inventory, and Inventory is not consulted.
	GPUs []GPU
}

func (c *Config) setDefaults() error {
	if c.NodeName == "" {
		return errors.New("DRA driver: no node name")
	}
	if c.Client == nil {
		return errors.New("DRA driver: no Kubernetes client")
	}
	if c.StateDir == "" {
		return errors.New("DRA driver: no state directory")
	}
	if c.RegistrarDir == "" {
		c.RegistrarDir = kubeletplugin.KubeletRegistryDir
	}
	if c.PluginDataDir == "" {
		c.PluginDataDir = filepath.Join(kubeletplugin.KubeletPluginsDir, DriverName)
	}
	if c.CDIDir == "" {
		c.CDIDir = DefaultCDIDir
	}
	if c.Inventory.NodeName == "" {
		c.Inventory.NodeName = c.NodeName
	}
	return nil
}

// Driver is a running DRA GPU driver.
type Driver struct {
	helper *kubeletplugin.Helper
	state  *state
	gpus   []GPU
	cancel context.CancelFunc
}

// Start discovers the GPUs, registers the driver with the kubelet, and
// publishes the node's ResourceSlice. It returns once the driver serves;
// Stop (or cancelling ctx) stops it.
func Start(ctx context.Context, cfg Config) (*Driver, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	logger := klog.LoggerWithName(klog.FromContext(ctx), "dra-gpu")
	ctx = klog.NewContext(ctx, logger)
	gpus := cfg.GPUs
	if gpus == nil {
		var err error
		if gpus, err = Inventory(ctx, cfg.Inventory); err != nil {
			return nil, fmt.Errorf("GPU inventory: %w", err)
		}
	}
	for _, dir := range []string{cfg.RegistrarDir, cfg.PluginDataDir} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, err
		}
	}
	st, err := newState(cfg.NodeName, gpus, cfg.CDIDir, cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if err := st.restore(); err != nil {
		logger.Error(err, "Restoring CDI specs of prepared claims")
	}
	ctx, cancel := context.WithCancel(ctx)
	d := &Driver{state: st, gpus: gpus, cancel: cancel}
	helper, err := kubeletplugin.Start(ctx, d,
		kubeletplugin.DriverName(DriverName),
		kubeletplugin.KubeClient(cfg.Client),
		kubeletplugin.NodeName(cfg.NodeName),
		kubeletplugin.RegistrarDirectoryPath(cfg.RegistrarDir),
		kubeletplugin.PluginDataDirectoryPath(cfg.PluginDataDir),
		kubeletplugin.HealthService(false),
	)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start DRA kubelet plugin: %w", err)
	}
	d.helper = helper
	if err := helper.PublishResources(ctx, DriverResources(cfg.NodeName, gpus)); err != nil {
		helper.Stop()
		cancel()
		return nil, fmt.Errorf("publish GPUs: %w", err)
	}
	logger.Info("DRA GPU driver started", "node", cfg.NodeName, "gpus", len(gpus), "backend", backendOf(gpus))
	return d, nil
}

func backendOf(gpus []GPU) string {
	if len(gpus) == 0 {
		return "none"
	}
	return gpus[0].Backend
}

// GPUs is the inventory the driver publishes.
func (d *Driver) GPUs() []GPU { return d.gpus }

// Stop unregisters the driver and stops publishing; the ResourceSlice
// stays, as with any kubelet plugin that restarts.
func (d *Driver) Stop() {
	if d == nil {
		return
	}
	d.helper.Stop()
	d.cancel()
}

// PrepareResourceClaims implements kubeletplugin.DRAPlugin.
func (d *Driver) PrepareResourceClaims(ctx context.Context, claims []*resourcev1.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	return d.state.prepare(ctx, claims), nil
}

// UnprepareResourceClaims implements kubeletplugin.DRAPlugin.
func (d *Driver) UnprepareResourceClaims(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	return d.state.unprepare(ctx, claims), nil
}

// HandleError implements kubeletplugin.DRAPlugin. Publishing errors are
// recoverable (the helper retries); they are logged.
func (d *Driver) HandleError(ctx context.Context, err error, msg string) {
	utilruntime.HandleErrorWithContext(ctx, err, msg)
}

// WatchHealthStatus implements kubeletplugin.DRAPlugin; the health service
// is off.
func (d *Driver) WatchHealthStatus(context.Context, chan<- kubeletplugin.DeviceHealthReport) error {
	return kubeletplugin.ErrHealthNotSupported
}
