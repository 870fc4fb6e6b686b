package scheduler

import (
	"reflect"
	"testing"

	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/validation"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufit"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufrag"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpupreempt"
)

// TestConfigDecodes reads Config back with kube-scheduler's own loader
// (upstream's scheme: decoding, conversion and defaulting) and checks that
// it is valid and holds Strata's settings and profile exactly: where each
// Strata plugin runs, the score weights, and StrataGPUFrag's arguments,
// which must be the plugin's defaults.
func TestConfigDecodes(t *testing.T) {
	cfg := loadConfig(t)
	if err := validation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
		t.Fatalf("Config is not valid: %v", err)
	}
	if cc := cfg.ClientConnection; cc.Kubeconfig != "/unused" || cc.QPS != 500 || cc.Burst != 1000 {
		t.Errorf("client connection %+v, want the kubeconfig given, 500 qps, burst 1000", cc)
	}
	if cfg.LeaderElection.LeaderElect {
		t.Error("leader election on")
	}
	if cfg.PercentageOfNodesToScore == nil || *cfg.PercentageOfNodesToScore != 100 {
		t.Errorf("percentageOfNodesToScore %v, want 100", cfg.PercentageOfNodesToScore)
	}
	if len(cfg.Profiles) != 1 || cfg.Profiles[0].SchedulerName != "default-scheduler" {
		t.Fatalf("profiles %+v, want default-scheduler alone", cfg.Profiles)
	}
	prof := cfg.Profiles[0]

	var score []config.Plugin
	for _, p := range ScorePlugins() {
		score = append(score, config.Plugin{Name: p.Name, Weight: p.Weight})
	}
	set := func(names ...string) []config.Plugin {
		var out []config.Plugin
		for _, n := range names {
			out = append(out, config.Plugin{Name: n})
		}
		return out
	}
	// Every extension point but multiPoint, which holds upstream's
	// defaults: Strata changes only these.
	p := prof.Plugins
	for _, tc := range []struct {
		point     string
		got, want config.PluginSet
	}{
		{"preEnqueue", p.PreEnqueue, config.PluginSet{}},
		{"queueSort", p.QueueSort, config.PluginSet{}},
		{"preFilter", p.PreFilter, config.PluginSet{Enabled: set(gpufit.Name)}},
		{"filter", p.Filter, config.PluginSet{Enabled: set(gpufit.Name, "DynamicResources"), Disabled: set("DynamicResources")}},
		{"postFilter", p.PostFilter, config.PluginSet{Enabled: set(gpupreempt.Name)}},
		{"preScore", p.PreScore, config.PluginSet{Enabled: set(gpufrag.Name)}},
		{"score", p.Score, config.PluginSet{Enabled: score}},
		{"reserve", p.Reserve, config.PluginSet{Enabled: set(gpufit.Name)}},
		{"permit", p.Permit, config.PluginSet{}},
		{"preBind", p.PreBind, config.PluginSet{}},
		{"bind", p.Bind, config.PluginSet{}},
		{"postBind", p.PostBind, config.PluginSet{}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.point, tc.got, tc.want)
		}
	}

	var found bool
	for _, pc := range prof.PluginConfig {
		if pc.Name != gpufrag.Name {
			continue
		}
		found = true
		var args gpufrag.Args
		if err := frameworkruntime.DecodeInto(pc.Args, &args); err != nil {
			t.Fatalf("%s args: %v", gpufrag.Name, err)
		}
		if args != gpufrag.DefaultArgs() {
			t.Errorf("%s args %+v, want its defaults %+v", gpufrag.Name, args, gpufrag.DefaultArgs())
		}
	}
	if !found {
		t.Errorf("no pluginConfig for %s", gpufrag.Name)
	}
}

// TestConfigurationParallelism checks that the typed configuration carries
// the worker count it is given, and the YAML the same.
func TestConfigurationParallelism(t *testing.T) {
	if got := Configuration("/k", 7).Parallelism; got == nil || *got != 7 {
		t.Errorf("parallelism %v, want 7", got)
	}
	data, err := ConfigYAML("/k", 3)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := loadYAML(t, data); cfg.Parallelism != 3 {
		t.Errorf("YAML parallelism %d, want 3", cfg.Parallelism)
	}
}
