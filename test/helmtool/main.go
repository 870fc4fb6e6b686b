// Command helmtool installs and uninstalls a Helm chart through Helm's Go
// SDK (helm.sh/helm/v4), as the end-to-end tests need: there is no helm
// binary on the test machines. It is its own module so that Helm's
// dependencies do not move the versions Strata itself builds with.
//
//	helmtool install --kubeconfig K --namespace N --name R [--set k=v ...] CHART_DIR
//	helmtool uninstall --kubeconfig K --namespace N --name R
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/loader"
	"helm.sh/helm/v4/pkg/cli"
	"helm.sh/helm/v4/pkg/kube"
)

type setFlags map[string]any

func (s setFlags) String() string { return fmt.Sprint(map[string]any(s)) }

// Set takes key=value; dotted keys make nested values (a.b=c).
func (s setFlags) Set(v string) error {
	key, value, ok := strings.Cut(v, "=")
	if !ok || key == "" {
		return fmt.Errorf("--set %q: use key=value", v)
	}
	m := map[string]any(s)
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = value
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: helmtool install|uninstall --kubeconfig K --namespace N --name R [--set k=v] [CHART_DIR]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster")
	namespace := fs.String("namespace", "default", "release namespace")
	name := fs.String("name", "", "release name")
	timeout := fs.Duration("timeout", 3*time.Minute, "wait this long for the release's resources")
	values := setFlags{}
	fs.Var(values, "set", "a value, key=value (repeatable)")
	_ = fs.Parse(os.Args[2:])
	if *name == "" {
		fail("--name is required")
	}
	settings := cli.New()
	settings.KubeConfig = *kubeconfig
	settings.SetNamespace(*namespace)
	cfg := action.NewConfiguration()
	if err := cfg.Init(settings.RESTClientGetter(), *namespace, "secret"); err != nil {
		fail("helm configuration: %v", err)
	}
	switch os.Args[1] {
	case "install":
		if fs.NArg() != 1 {
			fail("install needs the chart directory")
		}
		chart, err := loader.Load(fs.Arg(0))
		if err != nil {
			fail("load chart %s: %v", fs.Arg(0), err)
		}
		install := action.NewInstall(cfg)
		install.ReleaseName, install.Namespace = *name, *namespace
		install.WaitStrategy, install.Timeout = kube.StatusWatcherStrategy, *timeout
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		if _, err := install.RunWithContext(ctx, chart, values); err != nil {
			fail("install %s: %v", *name, err)
		}
		fmt.Printf("installed %s in %s\n", *name, *namespace)
	case "uninstall":
		uninstall := action.NewUninstall(cfg)
		uninstall.WaitStrategy, uninstall.Timeout = kube.StatusWatcherStrategy, *timeout
		if _, err := uninstall.Run(*name); err != nil {
			fail("uninstall %s: %v", *name, err)
		}
		fmt.Printf("uninstalled %s\n", *name)
	default:
		fail("unknown command %q: install or uninstall", os.Args[1])
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "helmtool: "+format+"\n", args...)
	os.Exit(1)
}
