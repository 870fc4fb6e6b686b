package scheduler

import (
	"os"
	"path/filepath"
	"runtime"
	goruntime "runtime"
	"slices"
	"testing"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	kubescheduler "k8s.io/kubernetes/pkg/scheduler"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	kubeframework "k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/profile"

	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufit"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufrag"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/nodeorder"
)

// TestScoreWeights builds kube-scheduler from Config as the server does
// and checks the score plugins it actually runs: every one of them is
// weighted by a multiple of nodeorder.Scale except the tie-break, so that
// no plugin (e.g. a default scorer added upstream and missing from
// ScorePlugins) can be outweighed by it; and the relative weights are
// upstream's, with StrataGPUFrag at FragWeight.
func TestScoreWeights(t *testing.T) {
	fw := defaultProfile(t)
	got := map[string]int32{}
	for _, p := range fw.ListPlugins().Score.Enabled {
		got[p.Name] = p.Weight
	}
	if got[nodeorder.Name] != 1 {
		t.Errorf("%s weight %d, want 1", nodeorder.Name, got[nodeorder.Name])
	}
	if got[gpufrag.Name] != FragWeight*int32(nodeorder.Scale) {
		t.Errorf("%s weight %d, want %d", gpufrag.Name, got[gpufrag.Name], FragWeight*nodeorder.Scale)
	}
	if got["NodeResourcesFit"] != int32(nodeorder.Scale) {
		t.Errorf("NodeResourcesFit weight %d, want %d (upstream's 1, scaled)", got["NodeResourcesFit"], nodeorder.Scale)
	}
	for name, w := range got {
		if name != nodeorder.Name && w%int32(nodeorder.Scale) != 0 {
			t.Errorf("score plugin %s runs with weight %d, not a multiple of %d: add it to ScorePlugins", name, w, nodeorder.Scale)
		}
	}
	for _, p := range ScorePlugins() {
		if _, ok := got[p.Name]; !ok {
			t.Errorf("%s is in ScorePlugins but does not score (a feature gate off, or renamed upstream?): its weight is dead", p.Name)
		}
	}
}

// TestFilterOrder checks that StrataGPUFit filters right before
// DynamicResources, so that the allocator never runs on a node the cheap
// check turned away, and that every other default filter still runs.
func TestFilterOrder(t *testing.T) {
	var names []string
	for _, p := range defaultProfile(t).ListPlugins().Filter.Enabled {
		names = append(names, p.Name)
	}
	fit, dra := slices.Index(names, gpufit.Name), slices.Index(names, "DynamicResources")
	if fit < 0 || dra != fit+1 {
		t.Errorf("filters %v: want %s right before DynamicResources", names, gpufit.Name)
	}
	for _, name := range []string{"NodeResourcesFit", "TaintToleration", "NodeAffinity", "VolumeBinding", "InterPodAffinity"} {
		if !slices.Contains(names, name) {
			t.Errorf("filters %v: default filter %s is missing", names, name)
		}
	}
}

// TestGPUFitReserves checks that StrataGPUFit runs at Reserve: it marks
// the claims in flight in the GPU state the Strata plugins share, which
// otherwise would not count them until the claim informer shows them.
func TestGPUFitReserves(t *testing.T) {
	var names []string
	for _, p := range defaultProfile(t).ListPlugins().Reserve.Enabled {
		names = append(names, p.Name)
	}
	if !slices.Contains(names, gpufit.Name) || !slices.Contains(names, "DynamicResources") {
		t.Errorf("reserve plugins %v: want %s beside DynamicResources", names, gpufit.Name)
	}
}

// loadConfig loads Config as kube-scheduler does.
func loadConfig(t *testing.T) *config.KubeSchedulerConfiguration {
	t.Helper()
	data, err := YAML(Configuration("/unused", Parallelism(goruntime.GOMAXPROCS(0))))
	if err != nil {
		t.Fatal(err)
	}
	return loadYAML(t, data)
}

// loadYAML loads a configuration file with kube-scheduler's own loader
// (upstream's scheme: decoding, conversion, defaulting).
func loadYAML(t *testing.T, data []byte) *config.KubeSchedulerConfiguration {
	t.Helper()
	logger, _ := ktesting.NewTestContext(t)
	file := filepath.Join(t.TempDir(), "scheduler.yaml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := options.LoadConfigFromFile(logger, file)
	if err != nil {
		t.Fatalf("the configuration does not load: %v", err)
	}
	return cfg
}

// defaultProfile builds kube-scheduler from Config as the server does and
// returns its default-scheduler profile.
func defaultProfile(t *testing.T) kubeframework.Framework {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	cfg := loadConfig(t)
	client := fake.NewClientset()
	inf := informers.NewSharedInformerFactory(client, 0)
	sched, err := kubescheduler.New(ctx, client, inf, nil,
		profile.NewRecorderFactory(events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})),
		kubescheduler.WithProfiles(cfg.Profiles...),
		kubescheduler.WithFrameworkOutOfTreeRegistry(Registry()))
	if err != nil {
		t.Fatalf("scheduler from Config: %v", err)
	}
	fw := sched.Profiles["default-scheduler"]
	if fw == nil {
		t.Fatal("no default-scheduler profile")
	}
	return fw
}

func TestParallelism(t *testing.T) {
	for _, tc := range []struct{ procs, want int }{{1, 1}, {2, 1}, {3, 2}, {8, 7}, {17, 16}, {64, 16}} {
		if got := Parallelism(tc.procs); got != tc.want {
			t.Errorf("Parallelism(%d) = %d, want %d", tc.procs, got, tc.want)
		}
	}
	if want, cfg := Parallelism(runtime.GOMAXPROCS(0)), loadConfig(t); int(cfg.Parallelism) != want {
		t.Errorf("Config sets parallelism %d, want %d", cfg.Parallelism, want)
	}
}
