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

// TestConfigDecodes reads the configuration back with kube-scheduler's own
// loader (upstream's scheme: decoding, conversion and defaulting) and checks
// that it is valid and that what Strata states survives the round trip:
// where each Strata plugin runs (against a list written here), the score
// weights and StrataGPUFrag's arguments (against the values the
// configuration is built from, so this half checks only the round trip).
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

// TestSecondProfile loads the second scheduler's configuration with
// kube-scheduler's own loader: one profile under the given name, the
// worker count given, and client-go's request rates, not the in-process
// ones.
func TestSecondProfile(t *testing.T) {
	c := Configuration("/k", 3)
	SecondProfile(c, "strata-gpu")
	data, err := YAML(c)
	if err != nil {
		t.Fatal(err)
	}
	cfg := loadYAML(t, data)
	if len(cfg.Profiles) != 1 || cfg.Profiles[0].SchedulerName != "strata-gpu" {
		t.Errorf("profiles %+v, want one named strata-gpu", cfg.Profiles)
	}
	if cfg.Parallelism != 3 || cfg.ClientConnection.QPS != 50 || cfg.ClientConnection.Burst != 100 {
		t.Errorf("parallelism %d, QPS %v, burst %d; want 3, 50, 100", cfg.Parallelism, cfg.ClientConnection.QPS, cfg.ClientConnection.Burst)
	}
}
