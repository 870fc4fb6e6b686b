// Command admission measures what image signature verification adds to
// pod admission on a real strata server: the latency of a pod create
// (server-side dry run, so admission runs in full but no pod is started)
// with no policy (a namespace exempt from the webhooks), with a cached
// verdict (image pinned by digest, or by tag, which is still resolved at
// each admission), and uncached (every request names an image verified for
// the first time), against the embedded registry on loopback. Cases are
// interleaved request by request so that machine noise hits all alike. It
// prints p50 and p99 per case, as median [min-max] over --runs runs.
//
//	go run ./bench/admission --bin bin --n 200 --runs 3
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/bench/internal/benchutil"
	"github.com/strata-dev/strata/pkg/signing"
)

const (
	registry = "localhost:5000"
	// pushHost is the same registry, named so go-containerregistry uses
	// plain HTTP.
	pushHost = "127.0.0.1:5000"
)

var cases = []string{"no policy", "cached (digest)", "cached (tag)", "uncached"}

func main() {
	binDir := flag.String("bin", "bin", "directory with strata and strata-pause (make build)")
	n := flag.Int("n", 200, "pod creations per case and run")
	runs := flag.Int("runs", 3, "runs")
	flag.Parse()
	if err := run(*binDir, *n, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench/admission:", err)
		os.Exit(1)
	}
}

func run(binDir string, n, runs int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	srv, err := benchutil.Start(ctx, binDir, "admission")
	if err != nil {
		return err
	}
	defer srv.Close()
	rc := srv.REST
	rc.QPS, rc.Burst = 1000, 1000
	client := kubernetes.NewForConfigOrDie(rc)
	dyn := dynamic.NewForConfigOrDie(rc)

	if err := setup(ctx, client); err != nil {
		return err
	}
	signer, err := setupPolicy(ctx, dyn)
	if err != nil {
		return err
	}
	app, appDigest, err := pushSigned(signer, "app")
	if err != nil {
		return err
	}

	// results[case] holds one p50 and one p99 per run, in ms.
	p50 := map[string][]float64{}
	p99 := map[string][]float64{}
	for r := 0; r < runs; r++ {
		fresh := make([]string, n+20)
		for i := range fresh {
			if fresh[i], _, err = pushSigned(signer, fmt.Sprintf("run%d-img%d", r, i)); err != nil {
				return err
			}
		}
		image := map[string]func(i int) (ns, image string){
			"no policy":       func(int) (string, string) { return "bench-exempt", app },
			"cached (digest)": func(int) (string, string) { return "bench", appDigest },
			"cached (tag)":    func(int) (string, string) { return "bench", app },
			"uncached":        func(i int) (string, string) { return "bench", fresh[i] },
		}
		lat := map[string][]float64{}
		for i := 0; i < n+20; i++ {
			for _, c := range cases {
				ns, img := image[c](i)
				d, err := createPod(ctx, client, ns, img)
				if err != nil {
					return err
				}
				if i >= 20 { // the first 20 warm up connections and caches
					lat[c] = append(lat[c], float64(d.Microseconds())/1000)
				}
			}
		}
		for _, c := range cases {
			p50[c] = append(p50[c], benchutil.Percentile(lat[c], 50))
			p99[c] = append(p99[c], benchutil.Percentile(lat[c], 99))
			fmt.Fprintf(os.Stderr, "run %d %-16s p50 %6.2f ms  p99 %6.2f ms\n", r+1, c, p50[c][r], p99[c][r])
		}
	}

	fmt.Printf("\n| case (n=%d per run, %d runs) | p50 | p99 | added p50 | added p99 |\n|---|---|---|---|---|\n", n, runs)
	base50, _, _ := benchutil.Stats(append([]float64(nil), p50["no policy"]...))
	base99, _, _ := benchutil.Stats(append([]float64(nil), p99["no policy"]...))
	for _, c := range cases {
		m50, lo50, hi50 := benchutil.Stats(append([]float64(nil), p50[c]...))
		m99, lo99, hi99 := benchutil.Stats(append([]float64(nil), p99[c]...))
		fmt.Printf("| %s | %.2f ms [%.2f-%.2f] | %.2f ms [%.2f-%.2f] | %+.2f ms | %+.2f ms |\n", c, m50, lo50, hi50, m99, lo99, hi99, m50-base50, m99-base99)
	}
	fmt.Println("\ncells: median [min-max] over runs; added = median minus the no-policy median")
	return nil
}

// setup makes the namespaces: bench (verified) and bench-exempt (the
// webhooks skip it), and waits for their service accounts.
func setup(ctx context.Context, client kubernetes.Interface) error {
	for name, labels := range map[string]map[string]string{
		"bench":        nil,
		"bench-exempt": {"security.strata.dev/image-policy": "exempt"},
	} {
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
			if err != nil && !strings.Contains(err.Error(), "already exists") {
				return false, nil
			}
			_, err = client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
			return err == nil, nil
		})
		if err != nil {
			return fmt.Errorf("namespace %s: %w", name, err)
		}
	}
	return nil
}

// setupPolicy creates a key and a ClusterImagePolicy trusting it for
// localhost:5000/bench/**, and waits until the policy is Ready.
func setupPolicy(ctx context.Context, dyn dynamic.Interface) (signature.Signer, error) {
	sv, _, err := signature.NewDefaultECDSASignerVerifier()
	if err != nil {
		return nil, err
	}
	pub, _ := sv.PublicKey()
	pem, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, err
	}
	gvr := schema.GroupVersionResource{Group: "security.strata.dev", Version: "v1alpha1", Resource: "clusterimagepolicies"}
	cip := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "security.strata.dev/v1alpha1", "kind": "ClusterImagePolicy",
		"metadata": map[string]any{"name": "bench"},
		"spec": map[string]any{
			"images":      []any{map[string]any{"glob": registry + "/bench/**"}},
			"authorities": []any{map[string]any{"key": map[string]any{"data": string(pem)}}},
		},
	}}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := dyn.Resource(gvr).Create(ctx, cip, metav1.CreateOptions{})
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			return false, nil
		}
		got, err := dyn.Resource(gvr).Get(ctx, "bench", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Ready" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	return sv, err
}

// pushSigned pushes a small random image as localhost:5000/bench/REPO:v1,
// signs it, and returns its tag and digest references.
func pushSigned(signer signature.Signer, repo string) (tag, digest string, err error) {
	img, err := random.Image(1024, 1)
	if err != nil {
		return "", "", err
	}
	ref, err := name.ParseReference(fmt.Sprintf("%s/bench/%s:v1", pushHost, repo))
	if err != nil {
		return "", "", err
	}
	if err := remote.Write(ref, img); err != nil {
		return "", "", fmt.Errorf("push %s: %w", ref, err)
	}
	if _, err := signing.Sign(context.Background(), ref.String(), signer); err != nil {
		return "", "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", "", err
	}
	return fmt.Sprintf("%s/bench/%s:v1", registry, repo), fmt.Sprintf("%s/bench/%s@%s", registry, repo, d), nil
}

// createPod admits a restricted-compliant pod with a server-side dry run
// and returns how long the API call took.
func createPod(ctx context.Context, client kubernetes.Interface, ns, image string) (time.Duration, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-", Namespace: ns},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "app", Image: image, SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			}}},
		},
	}
	start := time.Now()
	_, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return 0, fmt.Errorf("create pod with %s in %s: %w", image, ns, err)
	}
	return time.Since(start), nil
}
