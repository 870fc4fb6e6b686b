package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	servingv1 "github.com/strata-dev/strata/api/serving/v1alpha1"
	"github.com/strata-dev/strata/pkg/controllers/function"
	"github.com/strata-dev/strata/pkg/serverless"
)

// functionFlags are the connection flags every function subcommand takes.
type functionFlags struct {
	kubeconfig, dataDir, namespace string
}

func (f *functionFlags) add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, then DATA_DIR/admin.kubeconfig)")
	cmd.PersistentFlags().StringVar(&f.dataDir, "data-dir", defaultDataDir(), "the local server's data directory, for its admin kubeconfig")
	cmd.PersistentFlags().StringVarP(&f.namespace, "namespace", "n", "default", "namespace of the function")
}

func (f *functionFlags) clients() (client.Client, kubernetes.Interface, error) {
	path, err := kubeconfigPath(f.kubeconfig, f.dataDir)
	if err != nil {
		return nil, nil, err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig %s: %w (is `strata server` running? pass --kubeconfig or --data-dir)", path, err)
	}
	scheme, err := serverless.Scheme()
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", rc.Host, err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, err
	}
	return c, cs, nil
}

func newFunctionCommand() *cobra.Command {
	var ff functionFlags
	cmd := &cobra.Command{
		Use:     "function",
		Aliases: []string{"fn"},
		Short:   "Deploy and manage serverless Functions (serving.strata.dev)",
	}
	ff.add(cmd)
	cmd.AddCommand(newFunctionDeploy(&ff), newFunctionList(&ff), newFunctionLogs(&ff), newFunctionDelete(&ff))
	return cmd
}

// deployOptions are the flags of `strata function deploy`.
type deployOptions struct {
	image, runtime, memory string
	port                   int32
	env                    []string
	minScale, maxScale     int32
	target                 int32
	grace, timeout, window time.Duration
	wait                   time.Duration
}

// spec turns the flags into a FunctionSpec, naming the flag at fault.
func (o *deployOptions) spec(cmd *cobra.Command) (servingv1.FunctionSpec, error) {
	s := servingv1.FunctionSpec{Image: o.image, Runtime: servingv1.Runtime(o.runtime), Port: o.port}
	if o.image == "" {
		return s, fmt.Errorf("--image is required: the function's image, e.g. localhost:5000/wasm-http:v1")
	}
	if s.Runtime != servingv1.RuntimeWasm && s.Runtime != servingv1.RuntimeContainer {
		return s, fmt.Errorf("--runtime %q: use wasm or container", o.runtime)
	}
	if o.port < 1 || o.port > 65535 {
		return s, fmt.Errorf("--port %d: use a port from 1 to 65535", o.port)
	}
	for _, kv := range o.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || len(validation.IsEnvVarName(k)) > 0 {
			return s, fmt.Errorf("--env %q: use NAME=VALUE with a valid variable name", kv)
		}
		s.Env = append(s.Env, servingv1.EnvVar{Name: k, Value: v})
	}
	flags := cmd.Flags()
	if flags.Changed("min-scale") {
		if o.minScale < 0 {
			return s, fmt.Errorf("--min-scale %d: use 0 (scale to zero) or more", o.minScale)
		}
		s.MinScale = ptr.To(o.minScale)
	}
	if flags.Changed("max-scale") {
		if o.maxScale < 1 {
			return s, fmt.Errorf("--max-scale %d: use 1 or more", o.maxScale)
		}
		s.MaxScale = ptr.To(o.maxScale)
	}
	if s.MinScale != nil && s.MaxScale != nil && *s.MinScale > *s.MaxScale {
		return s, fmt.Errorf("--min-scale %d is above --max-scale %d", *s.MinScale, *s.MaxScale)
	}
	if flags.Changed("target-concurrency") {
		if o.target < 1 {
			return s, fmt.Errorf("--target-concurrency %d: use 1 or more requests per replica", o.target)
		}
		s.TargetConcurrency = ptr.To(o.target)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
		dst  **metav1.Duration
	}{{"scale-to-zero-grace", o.grace, &s.ScaleToZeroGracePeriod}, {"timeout", o.timeout, &s.Timeout}, {"stable-window", o.window, &s.StableWindow}} {
		if !flags.Changed(d.flag) {
			continue
		}
		if d.v <= 0 {
			return s, fmt.Errorf("--%s %s: use a positive duration such as 30s", d.flag, d.v)
		}
		*d.dst = &metav1.Duration{Duration: d.v}
	}
	if o.memory != "" {
		q, err := resource.ParseQuantity(o.memory)
		if err != nil || q.Sign() <= 0 {
			return s, fmt.Errorf("--memory %q: use a positive quantity such as 64Mi", o.memory)
		}
		s.Memory = &q
	}
	return s, nil
}

func newFunctionDeploy(ff *functionFlags) *cobra.Command {
	var o deployOptions
	cmd := &cobra.Command{
		Use:   "deploy NAME --image IMAGE [flags]",
		Short: "Create or update a Function and print its URL",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
				return fmt.Errorf("function name %q: %s", name, strings.Join(errs, "; "))
			}
			spec, err := o.spec(cmd)
			if err != nil {
				return err
			}
			c, _, err := ff.clients()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			fn := &servingv1.Function{ObjectMeta: metav1.ObjectMeta{Namespace: ff.namespace, Name: name}}
			err = c.Get(ctx, client.ObjectKeyFromObject(fn), fn)
			switch {
			case apierrors.IsNotFound(err):
				fn.Spec = spec
				err = c.Create(ctx, fn)
			case err == nil:
				fn.Spec = spec
				err = c.Update(ctx, fn)
			}
			if err != nil {
				return fmt.Errorf("deploy function %s/%s: %w", ff.namespace, name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "function %s/%s deployed\n", ff.namespace, name)
			if o.wait <= 0 {
				return nil
			}
			return waitFunctionReady(ctx, c, fn, o.wait, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.image, "image", "", "the function's image (wasm: built with `strata image build --wasm MODULE --http-port PORT`)")
	f.StringVar(&o.runtime, "runtime", "container", "wasm or container")
	f.Int32Var(&o.port, "port", 8080, "port the function listens on")
	f.StringArrayVar(&o.env, "env", nil, "NAME=VALUE environment variable (repeatable)")
	f.Int32Var(&o.minScale, "min-scale", 0, "fewest replicas (0 lets it scale to zero)")
	f.Int32Var(&o.maxScale, "max-scale", servingv1.DefaultMaxScale, "most replicas")
	f.Int32Var(&o.target, "target-concurrency", servingv1.DefaultTargetConcurrency, "requests in flight per replica to aim for")
	f.DurationVar(&o.grace, "scale-to-zero-grace", 30*time.Second, "idle time before the last replica goes")
	f.DurationVar(&o.window, "stable-window", 60*time.Second, "autoscaler averaging window (the panic window is a tenth)")
	f.DurationVar(&o.timeout, "timeout", function.DefaultTimeout*time.Second, "request timeout, including waiting for a replica")
	f.StringVar(&o.memory, "memory", "", "memory limit per replica (wasm: per instance), e.g. 64Mi")
	f.DurationVar(&o.wait, "wait", time.Minute, "wait this long for Ready (0: do not wait)")
	return cmd
}

func waitFunctionReady(ctx context.Context, c client.Client, fn *servingv1.Function, timeout time.Duration, out io.Writer) error {
	var last *metav1.Condition
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(fn), fn); err != nil {
			return false, nil
		}
		last = meta.FindStatusCondition(fn.Status.Conditions, servingv1.ConditionReady)
		if last == nil || last.ObservedGeneration < fn.Generation {
			return false, nil
		}
		return last.Status != metav1.ConditionUnknown, nil
	})
	if last != nil && last.Status == metav1.ConditionFalse {
		return fmt.Errorf("function %s/%s is not ready: %s: %s", fn.Namespace, fn.Name, last.Reason, last.Message)
	}
	if err != nil {
		return fmt.Errorf("function %s/%s not ready after %s", fn.Namespace, fn.Name, timeout)
	}
	fmt.Fprintf(out, "ready (%s): %s\n", last.Reason, fn.Status.URL)
	return nil
}

func newFunctionList(ff *functionFlags) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List Functions with their state, replicas and URL",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := ff.clients()
			if err != nil {
				return err
			}
			var list servingv1.FunctionList
			opts := []client.ListOption{}
			if !all {
				opts = append(opts, client.InNamespace(ff.namespace))
			}
			if err := c.List(cmd.Context(), &list, opts...); err != nil {
				return fmt.Errorf("list functions: %w", err)
			}
			sort.Slice(list.Items, func(i, j int) bool {
				a, b := list.Items[i], list.Items[j]
				return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
			})
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAMESPACE\tNAME\tRUNTIME\tREADY\tREASON\tREPLICAS\tURL")
			for _, fn := range list.Items {
				ready, reason := "Unknown", ""
				if cnd := meta.FindStatusCondition(fn.Status.Conditions, servingv1.ConditionReady); cnd != nil {
					ready, reason = string(cnd.Status), cnd.Reason
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", fn.Namespace, fn.Name, fn.Spec.Runtime, ready, reason,
					fn.Status.Replicas, fn.Status.DesiredReplicas, fn.Status.URL)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list functions in every namespace")
	return cmd
}

func newFunctionLogs(ff *functionFlags) *cobra.Command {
	var tail int64
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print the logs of a Function's replicas",
		Long: "Print the logs of a Function's replicas, each line prefixed with its pod. " +
			"Requests the node's wasm host answered while the function had no replica log to the server's log (DATA_DIR/logs/strata.log).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cs, err := ff.clients()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var fn servingv1.Function
			if err := c.Get(ctx, client.ObjectKey{Namespace: ff.namespace, Name: args[0]}, &fn); err != nil {
				return fmt.Errorf("function %s/%s: %w", ff.namespace, args[0], err)
			}
			pods, err := cs.CoreV1().Pods(ff.namespace).List(ctx, metav1.ListOptions{LabelSelector: function.LabelFunction + "=" + args[0]})
			if err != nil {
				return fmt.Errorf("list pods of function %s/%s: %w", ff.namespace, args[0], err)
			}
			if len(pods.Items) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "function %s/%s has no replicas now (scaled to zero)\n", ff.namespace, args[0])
				return nil
			}
			out := cmd.OutOrStdout()
			for _, p := range pods.Items {
				opts := &corev1.PodLogOptions{Container: function.ContainerName}
				if tail >= 0 {
					opts.TailLines = ptr.To(tail)
				}
				rc, err := cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, opts).Stream(ctx)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "[%s] no logs: %v\n", p.Name, err)
					continue
				}
				sc := bufio.NewScanner(rc)
				for sc.Scan() {
					fmt.Fprintf(out, "[%s] %s\n", p.Name, sc.Text())
				}
				rc.Close()
			}
			return nil
		},
	}
	cmd.Flags().Int64Var(&tail, "tail", -1, "lines from the end of each replica's log (-1: all)")
	return cmd
}

func newFunctionDelete(ff *functionFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a Function with its replicas",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := ff.clients()
			if err != nil {
				return err
			}
			fn := &servingv1.Function{ObjectMeta: metav1.ObjectMeta{Namespace: ff.namespace, Name: args[0]}}
			if err := c.Delete(cmd.Context(), fn, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
				return fmt.Errorf("delete function %s/%s: %w", ff.namespace, args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "function %s/%s deleted\n", ff.namespace, args[0])
			return nil
		},
	}
}
