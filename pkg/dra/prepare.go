package dra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"
	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"
	cdiparser "tags.cncf.io/container-device-interface/pkg/parser"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/strata-dev/strata/pkg/fileutil"
	"github.com/strata-dev/strata/pkg/gpu"
)

// CDI vendor and class of the devices the driver prepares:
// "gpu.strata.dev/gpu=<claim UID>-<request>".
const (
	cdiVendor = DriverName
	cdiClass  = "gpu"
	cdiKind   = cdiVendor + "/" + cdiClass
)

// Environment variables that a prepared claim gives its containers.
const (
	EnvNVIDIAVisibleDevices = "NVIDIA_VISIBLE_DEVICES"
	EnvCUDAVisibleDevices   = "CUDA_VISIBLE_DEVICES"
	// EnvMPSThreadPercentage is CUDA MPS's per-client compute limit, set
	// for shares (compute < 1000).
	EnvMPSThreadPercentage = "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"
	// EnvMPSMemoryLimit is CUDA MPS's per-client memory limit,
	// "<ordinal>=<MiB>M,...", set when the claim reserved memory.
	EnvMPSMemoryLimit = "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"
	EnvDevices        = "STRATA_GPU_DEVICES"
	EnvComputeMilli   = "STRATA_GPU_COMPUTE_MILLI"
	// EnvMemoryLimit is the memory the claim reserved per GPU, in bytes;
	// unset for claims that reserved none.
	EnvMemoryLimit = "STRATA_GPU_MEMORY_LIMIT_BYTES"
	EnvModel       = "STRATA_GPU_MODEL"
	EnvBackend     = "STRATA_GPU_BACKEND"
	EnvClaim       = "STRATA_GPU_CLAIM"
)

// preparedDevice is one allocated device (or share) of a prepared claim.
type preparedDevice struct {
	Request      string `json:"request"`
	Pool         string `json:"pool"`
	Device       string `json:"device"`
	ShareID      string `json:"shareID,omitempty"`
	CDIDevice    string `json:"cdiDevice"`
	ComputeMilli int64  `json:"computeMilli"`
	MemoryBytes  int64  `json:"memoryBytes"`
}

type preparedClaim struct {
	UID       types.UID        `json:"uid"`
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	Devices   []preparedDevice `json:"devices"`
	// Spec is the claim's CDI spec, rewritten after a reboot cleared the
	// CDI directory.
	Spec *cdispec.Spec `json:"spec"`
}

type checkpoint struct {
	Version int                          `json:"version"`
	Node    string                       `json:"node"`
	Claims  map[types.UID]*preparedClaim `json:"claims"`
}

const checkpointVersion = 1

// state prepares and unprepares claims; it is the part of the driver that
// does not depend on the kubelet plugin helper.
type state struct {
	mu       sync.Mutex
	node     string
	gpus     map[string]GPU // by device name
	cdi      *cdiapi.Cache
	cdiDir   string
	file     string // checkpoint
	claims   map[types.UID]*preparedClaim
	devExist func(path string) bool
}

func newState(node string, gpus []GPU, cdiDir, stateDir string) (*state, error) {
	for _, dir := range []string{cdiDir, stateDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	cache, _ := cdiapi.NewCache(cdiapi.WithSpecDirs(cdiDir), cdiapi.WithAutoRefresh(false))
	s := &state{
		node:   node,
		gpus:   map[string]GPU{},
		cdi:    cache,
		cdiDir: cdiDir,
		file:   filepath.Join(stateDir, "checkpoint.json"),
		claims: map[types.UID]*preparedClaim{},
		devExist: func(path string) bool {
			_, err := os.Stat(path)
			return err == nil
		},
	}
	for _, g := range gpus {
		s.gpus[g.DeviceName()] = g
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *state) load() error {
	data, err := os.ReadFile(s.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var cp checkpoint
	if err := json.Unmarshal(data, &cp); err != nil {
		return fmt.Errorf("DRA checkpoint %s: %w", s.file, err)
	}
	if cp.Version != checkpointVersion {
		return fmt.Errorf("DRA checkpoint %s: version %d, want %d", s.file, cp.Version, checkpointVersion)
	}
	if cp.Claims != nil {
		s.claims = cp.Claims
	}
	return nil
}

func (s *state) save() error {
	data, err := json.MarshalIndent(checkpoint{Version: checkpointVersion, Node: s.node, Claims: s.claims}, "", "  ")
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(s.file, data, 0o600)
}

// restore rewrites the CDI specs of every checkpointed claim: the kubelet
// does not prepare a claim again once its own checkpoint says prepared, but
// a reboot empties /var/run/cdi.
func (s *state) restore() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, c := range s.claims {
		if err := s.writeSpec(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func specName(uid types.UID) string {
	return cdiapi.GenerateTransientSpecName(cdiVendor, cdiClass, string(uid)) + ".json"
}

func (s *state) writeSpec(c *preparedClaim) error {
	if c.Spec == nil {
		return nil
	}
	if err := s.cdi.WriteSpec(c.Spec, specName(c.UID)); err != nil {
		return fmt.Errorf("write CDI spec of claim %s/%s: %w", c.Namespace, c.Name, err)
	}
	return nil
}

// prepare prepares claims; each gets its own result.
func (s *state) prepare(ctx context.Context, claims []*resourcev1.ResourceClaim) map[types.UID]kubeletplugin.PrepareResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	results := make(map[types.UID]kubeletplugin.PrepareResult, len(claims))
	for _, claim := range claims {
		devices, err := s.prepareClaim(ctx, claim)
		results[claim.UID] = kubeletplugin.PrepareResult{Devices: devices, Err: err}
	}
	return results
}

func (s *state) prepareClaim(ctx context.Context, claim *resourcev1.ResourceClaim) ([]kubeletplugin.Device, error) {
	c, ok := s.claims[claim.UID]
	if !ok {
		var err error
		if c, err = s.newPreparedClaim(claim); err != nil {
			return nil, err
		}
		// The scheduler's allocation is authoritative: it may hand out a
		// share whose previous claim the kubelet has not unprepared yet.
		// Refusing would only stall the pod in the kubelet's backoff, so an
		// apparent over-commit is logged, not refused.
		if err := s.checkCapacity(c); err != nil {
			klog.FromContext(ctx).Info("GPU looks over-committed; trusting the scheduler's allocation", "claim", klog.KObj(claim), "reason", err.Error())
		}
	}
	if err := s.writeSpec(c); err != nil {
		return nil, err
	}
	s.claims[claim.UID] = c
	if err := s.save(); err != nil {
		return nil, fmt.Errorf("save DRA checkpoint: %w", err)
	}
	klog.FromContext(ctx).V(2).Info("Prepared GPU claim", "claim", klog.KObj(claim), "devices", len(c.Devices))
	return c.kubeletDevices(), nil
}

func (c *preparedClaim) kubeletDevices() []kubeletplugin.Device {
	out := make([]kubeletplugin.Device, 0, len(c.Devices))
	for _, d := range c.Devices {
		kd := kubeletplugin.Device{
			Requests:     []string{d.Request},
			PoolName:     d.Pool,
			DeviceName:   d.Device,
			CDIDeviceIDs: []string{d.CDIDevice},
		}
		if d.ShareID != "" {
			id := types.UID(d.ShareID)
			kd.ShareID = &id
		}
		out = append(out, kd)
	}
	return out
}

// topRequest strips a subrequest: "gpu/small" -> "gpu".
func topRequest(request string) string {
	top, _, _ := strings.Cut(request, "/")
	return top
}

func (s *state) newPreparedClaim(claim *resourcev1.ResourceClaim) (*preparedClaim, error) {
	if claim.Status.Allocation == nil {
		return nil, fmt.Errorf("claim %s/%s is not allocated", claim.Namespace, claim.Name)
	}
	c := &preparedClaim{UID: claim.UID, Namespace: claim.Namespace, Name: claim.Name}
	for _, r := range claim.Status.Allocation.Devices.Results {
		if r.Driver != DriverName {
			continue
		}
		if r.Pool != s.node {
			return nil, fmt.Errorf("claim %s/%s: device %s is in pool %q, not in this node's pool %q", claim.Namespace, claim.Name, r.Device, r.Pool, s.node)
		}
		if _, ok := s.gpus[r.Device]; !ok {
			return nil, fmt.Errorf("claim %s/%s: this node has no GPU %q", claim.Namespace, claim.Name, r.Device)
		}
		d := preparedDevice{
			Request:   r.Request,
			Pool:      r.Pool,
			Device:    r.Device,
			CDIDevice: cdiparser.QualifiedName(cdiVendor, cdiClass, string(claim.UID)+"-"+topRequest(r.Request)),
		}
		if r.ShareID != nil {
			d.ShareID = string(*r.ShareID)
		}
		// Without consumed capacity (feature off, or an AdminAccess
		// request) the allocation is exclusive: the whole GPU.
		d.ComputeMilli, d.MemoryBytes = gpu.Consumed(&r)
		c.Devices = append(c.Devices, d)
	}
	if len(c.Devices) == 0 {
		return nil, fmt.Errorf("claim %s/%s has no device of driver %s", claim.Namespace, claim.Name, DriverName)
	}
	c.Spec = s.cdiSpec(c)
	return c, nil
}

// checkCapacity cross-checks the scheduler: the claims prepared on one GPU
// should stay within its capacity. It only feeds a log line, so it reads
// no API: a claim whose pod is gone but that the kubelet has not
// unprepared yet still counts here, which is why an excess is not an error.
func (s *state) checkCapacity(c *preparedClaim) error {
	type use struct{ compute, memory int64 }
	used := map[string]use{}
	add := func(d preparedDevice) {
		u := used[d.Device]
		u.compute += d.ComputeMilli
		u.memory += d.MemoryBytes
		used[d.Device] = u
	}
	for uid, other := range s.claims {
		if uid == c.UID {
			continue
		}
		for _, d := range other.Devices {
			add(d)
		}
	}
	for _, d := range c.Devices {
		add(d)
	}
	for _, d := range c.Devices {
		g, u := s.gpus[d.Device], used[d.Device]
		if u.compute > gpu.MilliPerGPU || u.memory > g.MemoryBytes {
			return fmt.Errorf("claim %s/%s: GPU %s would be over-committed (compute %d/%d milli-GPU, memory %d/%d bytes with the claims already prepared)",
				c.Namespace, c.Name, d.Device, u.compute, gpu.MilliPerGPU, u.memory, g.MemoryBytes)
		}
	}
	return nil
}

// cdiSpec builds the claim's CDI spec: one CDI device per request, whose
// environment describes all GPUs (or shares) of that request.
func (s *state) cdiSpec(c *preparedClaim) *cdispec.Spec {
	spec := &cdispec.Spec{Kind: cdiKind}
	var requests []string
	byRequest := map[string][]preparedDevice{}
	for _, d := range c.Devices {
		r := topRequest(d.Request)
		if _, ok := byRequest[r]; !ok {
			requests = append(requests, r)
		}
		byRequest[r] = append(byRequest[r], d)
	}
	for _, r := range requests {
		devs := byRequest[r]
		var uuids, names, mpsMem []string
		var nodes []*cdispec.DeviceNode
		compute, memory := int64(gpu.MilliPerGPU), int64(-1)
		for i, d := range devs {
			g := s.gpus[d.Device]
			uuids = append(uuids, g.UUID)
			names = append(names, d.Device)
			compute = min(compute, d.ComputeMilli)
			if memory < 0 || d.MemoryBytes < memory {
				memory = d.MemoryBytes
			}
			if d.MemoryBytes > 0 {
				mpsMem = append(mpsMem, fmt.Sprintf("%d=%dM", i, (d.MemoryBytes+(1<<20)-1)>>20))
			}
			if g.Backend == BackendNVML && g.Minor >= 0 {
				if p := fmt.Sprintf("/dev/nvidia%d", g.Minor); s.devExist(p) {
					nodes = append(nodes, &cdispec.DeviceNode{Path: p})
				}
			}
		}
		g0 := s.gpus[devs[0].Device]
		env := []string{
			EnvNVIDIAVisibleDevices + "=" + strings.Join(uuids, ","),
			EnvCUDAVisibleDevices + "=" + strings.Join(uuids, ","),
			EnvDevices + "=" + strings.Join(names, ","),
			EnvModel + "=" + g0.Model,
			EnvBackend + "=" + g0.Backend,
			EnvClaim + "=" + c.Namespace + "/" + c.Name,
			EnvComputeMilli + "=" + strconv.FormatInt(compute, 10),
		}
		if compute < gpu.MilliPerGPU {
			env = append(env, EnvMPSThreadPercentage+"="+strconv.FormatInt(max(1, (compute+9)/10), 10))
		}
		if memory > 0 {
			env = append(env, EnvMemoryLimit+"="+strconv.FormatInt(memory, 10))
		}
		if len(mpsMem) > 0 {
			env = append(env, EnvMPSMemoryLimit+"="+strings.Join(mpsMem, ","))
		}
		if len(nodes) > 0 {
			for _, p := range []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"} {
				if s.devExist(p) {
					nodes = append(nodes, &cdispec.DeviceNode{Path: p})
				}
			}
		}
		spec.Devices = append(spec.Devices, cdispec.Device{
			Name:           string(c.UID) + "-" + r,
			ContainerEdits: cdispec.ContainerEdits{Env: env, DeviceNodes: nodes},
		})
	}
	version, err := cdiapi.MinimumRequiredVersion(spec)
	if err != nil {
		version = cdispec.CurrentVersion
	}
	spec.Version = version
	return spec
}

// unprepare undoes prepare; unknown claims are already unprepared.
func (s *state) unprepare(ctx context.Context, claims []kubeletplugin.NamespacedObject) map[types.UID]error {
	s.mu.Lock()
	defer s.mu.Unlock()
	results := make(map[types.UID]error, len(claims))
	for _, claim := range claims {
		results[claim.UID] = s.unprepareClaim(ctx, claim)
	}
	return results
}

func (s *state) unprepareClaim(ctx context.Context, claim kubeletplugin.NamespacedObject) error {
	if err := s.cdi.RemoveSpec(specName(claim.UID)); err != nil {
		return fmt.Errorf("remove CDI spec of claim %s: %w", claim, err)
	}
	if _, ok := s.claims[claim.UID]; ok {
		delete(s.claims, claim.UID)
		if err := s.save(); err != nil {
			return fmt.Errorf("save DRA checkpoint: %w", err)
		}
	}
	klog.FromContext(ctx).V(2).Info("Unprepared GPU claim", "claim", claim.String())
	return nil
}
