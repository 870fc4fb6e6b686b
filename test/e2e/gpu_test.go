package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	schedulingv1beta1 "k8s.io/api/scheduling/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/test/testpods"
)

// The GPU issue's acceptance 1-4 against a real server with two simulated
// A100-80GB GPUs (1000 milli-GPU each).
func TestGPUs(t *testing.T) {
	s := cluster(t)
	ctx := context.Background()
	pushImage(t, "hello", "localhost:5000/hello:v1", "--port", "8080", "--user", "65532")
	s.gpuTemplate(t, "share-250", "250", "")
	s.gpuTemplate(t, "share-500", "500", "")
	s.gpuTemplate(t, "whole", "", "")
	s.gpuTemplate(t, "too-much-memory", "", "100Gi")

	t.Run("four 250m pods share one GPU, a fifth takes another, deleting frees", func(t *testing.T) {
		defer s.deleteGPUPods(t)
		// One after the other: upstream DynamicResources counts a share
		// twice between PreBind's assume and its in-flight cleanup
		// (plugins/README.md, TestDRAInFlightDoubleCount), so a pod
		// allocated in that window can find the first GPU full and take
		// the second. Strata's own packing is what is tested here.
		for i := 1; i <= 5; i++ {
			s.gpuPod(t, fmt.Sprintf("share-%d", i), "share-250", "", "")
			s.waitRunning(t, fmt.Sprintf("share-%d", i))
		}
		byGPU := map[string][]string{}
		for i := 1; i <= 5; i++ {
			name := fmt.Sprintf("share-%d", i)
			env := s.podEnv(t, name)
			if env["STRATA_GPU_COMPUTE_MILLI"] != "250" || env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] != "25" || env["NVIDIA_VISIBLE_DEVICES"] == "" {
				t.Fatalf("%s sees %v", name, env)
			}
			byGPU[env["NVIDIA_VISIBLE_DEVICES"]] = append(byGPU[env["NVIDIA_VISIBLE_DEVICES"]], name)
		}
		if len(byGPU) != 2 {
			t.Fatalf("pods by GPU: %v, want four on one GPU and one on the other", byGPU)
		}
		var alone string
		for _, pods := range byGPU {
			if len(pods) != 1 && len(pods) != 4 {
				t.Fatalf("pods by GPU: %v", byGPU)
			}
			if len(pods) == 1 {
				alone = pods[0]
			}
		}
		// Neither GPU is free: a whole-GPU pod waits ...
		s.gpuPod(t, "whole-1", "whole", "", "")
		s.stillPending(t, "whole-1", 5*time.Second)
		// ... until the lone share goes.
		if err := s.client.CoreV1().Pods("default").Delete(ctx, alone, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			t.Fatal(err)
		}
		s.waitRunning(t, "whole-1")
		if env := s.podEnv(t, "whole-1"); env["STRATA_GPU_COMPUTE_MILLI"] != "1000" || env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] != "" {
			t.Fatalf("whole GPU pod sees %v", env)
		}
	})

	t.Run("a gang that cannot fit stays entirely pending, then starts together", func(t *testing.T) {
		defer s.deleteGPUPods(t)
		// One GPU taken: room for two of the gang's four 500m pods.
		s.gpuPod(t, "blocker", "whole", "", "")
		s.waitRunning(t, "blocker")
		s.podGroup(t, "gang", 4, nil)
		for i := 1; i <= 4; i++ {
			s.gpuPod(t, fmt.Sprintf("gang-%d", i), "share-500", "gang", "")
		}
		for i := 1; i <= 4; i++ {
			s.stillPending(t, fmt.Sprintf("gang-%d", i), 0)
		}
		time.Sleep(8 * time.Second)
		for i := 1; i <= 4; i++ {
			s.stillPending(t, fmt.Sprintf("gang-%d", i), 0)
		}
		if err := s.client.CoreV1().Pods("default").Delete(ctx, "blocker", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 4; i++ {
			s.waitRunning(t, fmt.Sprintf("gang-%d", i))
		}
	})

	// Two gangs of two whole-GPU pods on two GPUs, their pods arriving
	// interleaved: placed pod by pod, each gang could hold one GPU and wait
	// at Permit for the other until the timeout (minutes). One gang must
	// run whole and the other wait whole, then start when the first goes.
	t.Run("two gangs competing for the same GPUs do not deadlock", func(t *testing.T) {
		defer s.deleteGPUPods(t)
		s.podGroup(t, "gang-a", 2, nil)
		s.podGroup(t, "gang-b", 2, nil)
		for _, name := range []string{"a-1", "b-1", "a-2", "b-2"} {
			s.gpuPod(t, name, "whole", "gang-"+name[:1], "")
		}
		var first, second string
		waitFor(t, 60*time.Second, "one whole gang to be placed", func(ctx context.Context) (bool, error) {
			placed := map[string]int{}
			for _, name := range []string{"a-1", "b-1", "a-2", "b-2"} {
				p, err := s.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				if p.Spec.NodeName != "" {
					placed[name[:1]]++
				}
			}
			switch {
			case placed["a"] == 2 && placed["b"] == 0:
				first, second = "a", "b"
			case placed["b"] == 2 && placed["a"] == 0:
				first, second = "b", "a"
			case placed["a"]+placed["b"] > 2 || (placed["a"] == 1 && placed["b"] == 1):
				return false, fmt.Errorf("gangs placed partly: %v", placed)
			}
			return first != "", nil
		})
		s.waitRunning(t, first+"-1")
		s.waitRunning(t, first+"-2")
		s.stillPending(t, second+"-1", 3*time.Second)
		s.stillPending(t, second+"-2", 0)
		for _, name := range []string{first + "-1", first + "-2"} {
			if err := s.client.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
				t.Fatal(err)
			}
		}
		s.waitRunning(t, second+"-1")
		s.waitRunning(t, second+"-2")
	})

	t.Run("a latency-sensitive pod preempts a best-effort GPU pod", func(t *testing.T) {
		defer s.deleteGPUPods(t)
		s.preemptsOneOfTwo(t, "whole", "whole", "inference")
	})

	// Both GPUs have compute left but not the GPU memory the inference pod
	// asks: only evicting a pod that holds memory makes room.
	t.Run("a latency-sensitive pod preempts the best-effort pod holding the GPU memory it needs", func(t *testing.T) {
		defer s.deleteGPUPods(t)
		s.gpuTemplate(t, "share-100-70gi", "100", "70Gi")
		s.gpuTemplate(t, "share-100-40gi", "100", "40Gi")
		s.preemptsOneOfTwo(t, "share-100-70gi", "share-100-40gi", "inference-mem")
		if env := s.podEnv(t, "inference-mem"); env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] != "0=40960M" {
			t.Fatalf("inference pod sees %v, want CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=40960M", env)
		}
	})

	t.Run("a best-effort gang with disruptionMode All is preempted as a unit", func(t *testing.T) {
		defer s.deleteGPUPods(t)
		s.podGroup(t, "batch-gang", 2, func(spec *schedulingv1beta1.PodGroupSpec) {
			// The gang's pods share its priority; All: preempt them together.
			spec.PriorityClassName = "strata-best-effort"
			spec.DisruptionMode = &schedulingv1beta1.DisruptionMode{All: &schedulingv1beta1.AllDisruptionMode{}}
		})
		// The gang holds both GPUs; the inference pod needs one, but half
		// a gang is useless, so both members go.
		s.gpuPod(t, "member-1", "whole", "batch-gang", "strata-best-effort")
		s.gpuPod(t, "member-2", "whole", "batch-gang", "strata-best-effort")
		s.waitRunning(t, "member-1")
		s.waitRunning(t, "member-2")
		s.gpuPod(t, "inference", "whole", "", "strata-latency-sensitive")
		s.waitRunning(t, "inference")
		for _, name := range []string{"member-1", "member-2"} {
			p, err := s.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err == nil && p.DeletionTimestamp == nil {
				t.Errorf("gang member %s was not preempted with the rest of its gang", name)
			}
		}
	})

	// The kubelet prepares a claim once: a pod that joins a claim already
	// prepared on the node never reaches the driver's prepare, yet its
	// containers must get the same GPU.
	t.Run("a pod joining a ResourceClaim already in use sees its GPU too", func(t *testing.T) {
		claim := &resourcev1.ResourceClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "shared-250", Namespace: "default"},
			Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
				Name: "gpu", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "gpu.strata.dev",
					Capacity: &resourcev1.CapacityRequirements{Requests: map[resourcev1.QualifiedName]resource.Quantity{"compute": resource.MustParse("250")}}}}}}},
		}
		if _, err := s.client.ResourceV1().ResourceClaims("default").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer s.deleteGPUPods(t)
		// Deleted first: it goes once its pods are gone.
		defer s.client.ResourceV1().ResourceClaims("default").Delete(ctx, claim.Name, metav1.DeleteOptions{})
		s.createGPUPod(t, "joiner-1", corev1.PodResourceClaim{Name: "gpu", ResourceClaimName: ptr.To(claim.Name)}, "", "")
		first := s.podEnv(t, "joiner-1")
		s.createGPUPod(t, "joiner-2", corev1.PodResourceClaim{Name: "gpu", ResourceClaimName: ptr.To(claim.Name)}, "", "")
		second := s.podEnv(t, "joiner-2")
		if first["NVIDIA_VISIBLE_DEVICES"] == "" || first["STRATA_GPU_COMPUTE_MILLI"] != "250" {
			t.Fatalf("first pod sees %v", first)
		}
		if second["NVIDIA_VISIBLE_DEVICES"] != first["NVIDIA_VISIBLE_DEVICES"] || second["STRATA_GPU_COMPUTE_MILLI"] != "250" {
			t.Fatalf("second pod on the same claim sees %v, want what the first sees: %v", second, first)
		}
	})

	t.Run("claims are created with delete protection, and an unused one still deletes", func(t *testing.T) {
		claim := &resourcev1.ResourceClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "never-used", Namespace: "default"},
			Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
				Name: "gpu", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "gpu.strata.dev"}}}}},
		}
		got, err := s.client.ResourceV1().ResourceClaims("default").Create(ctx, claim, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Finalizers, []string{resourcev1.Finalizer}) {
			t.Fatalf("new claim's finalizers %v, want [%s] (MutatingAdmissionPolicy strata-resourceclaim-delete-protection)", got.Finalizers, resourcev1.Finalizer)
		}
		if err := s.client.ResourceV1().ResourceClaims("default").Delete(ctx, claim.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// kube-controller-manager's resource claim controller drops the
		// finalizer of a deleted claim nobody uses.
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := s.client.ResourceV1().ResourceClaims("default").Get(ctx, claim.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			t.Fatalf("deleted unused claim still there after 30 s: %v", err)
		}
	})

	t.Run("bad claims say why", func(t *testing.T) {
		defer s.deleteGPUPods(t)
		s.gpuPod(t, "greedy", "too-much-memory", "", "")
		// StrataGPUFit says why before DynamicResources' allocator runs.
		s.waitEvent(t, "greedy", "FailedScheduling", "no gpu.strata.dev GPU here has 100Gi of memory (the largest has")
		s.stillPending(t, "greedy", 0)

		claim := &resourcev1.ResourceClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "unknown-class", Namespace: "default"},
			Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
				Name: "gpu", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "gpu.example.com"}}}}},
		}
		_, err := s.client.ResourceV1().ResourceClaims("default").Create(ctx, claim, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), `device class "gpu.example.com" does not exist`) || !strings.Contains(err.Error(), "gpu.strata.dev") {
			t.Fatalf("claim with an unknown device class: %v", err)
		}
	})
}

// gpuTemplate creates a ResourceClaimTemplate for one GPU of class
// gpu.strata.dev with the given compute (milli-GPU) and memory requests.
func (s *server) gpuTemplate(t *testing.T, name, compute, memory string) {
	t.Helper()
	req := &resourcev1.ExactDeviceRequest{DeviceClassName: "gpu.strata.dev"}
	if compute != "" || memory != "" {
		req.Capacity = &resourcev1.CapacityRequirements{Requests: map[resourcev1.QualifiedName]resource.Quantity{}}
		if compute != "" {
			req.Capacity.Requests["compute"] = resource.MustParse(compute)
		}
		if memory != "" {
			req.Capacity.Requests["memory"] = resource.MustParse(memory)
		}
	}
	tpl := &resourcev1.ResourceClaimTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: resourcev1.ResourceClaimTemplateSpec{Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{
			Requests: []resourcev1.DeviceRequest{{Name: "gpu", Exactly: req}}}}},
	}
	if _, err := s.client.ResourceV1().ResourceClaimTemplates("default").Create(context.Background(), tpl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.client.ResourceV1().ResourceClaimTemplates("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// preemptsOneOfTwo runs two best-effort pods from victimTemplate, then a
// latency-sensitive pod from template, and checks that it runs with
// exactly one of the two preempted.
func (s *server) preemptsOneOfTwo(t *testing.T, victimTemplate, template, name string) {
	t.Helper()
	victims := []string{name + "-victim-1", name + "-victim-2"}
	for _, v := range victims {
		s.gpuPod(t, v, victimTemplate, "", "strata-best-effort")
	}
	for _, v := range victims {
		s.waitRunning(t, v)
	}
	s.gpuPod(t, name, template, "", "strata-latency-sensitive")
	s.waitRunning(t, name)
	left := 0
	for _, v := range victims {
		p, err := s.client.CoreV1().Pods("default").Get(context.Background(), v, metav1.GetOptions{})
		if err == nil && p.DeletionTimestamp == nil {
			left++
		}
	}
	if left != 1 {
		t.Fatalf("%d best-effort pods left, want exactly one preempted", left)
	}
}

// podGroup creates a gang PodGroup of minCount pods, deleted when the test
// ends; edit, if set, changes its spec first.
func (s *server) podGroup(t *testing.T, name string, minCount int32, edit func(*schedulingv1beta1.PodGroupSpec)) {
	t.Helper()
	pg := &schedulingv1beta1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: schedulingv1beta1.PodGroupSpec{SchedulingPolicy: schedulingv1beta1.PodGroupSchedulingPolicy{
			Gang: &schedulingv1beta1.GangSchedulingPolicy{MinCount: minCount}}},
	}
	if edit != nil {
		edit(&pg.Spec)
	}
	if _, err := s.client.SchedulingV1beta1().PodGroups("default").Create(context.Background(), pg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.client.SchedulingV1beta1().PodGroups("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// gpuPod runs hello with a claim from template, optionally in a PodGroup
// and with a priority class.
func (s *server) gpuPod(t *testing.T, name, template, podGroup, priorityClass string) {
	t.Helper()
	s.createGPUPod(t, name, corev1.PodResourceClaim{Name: "gpu", ResourceClaimTemplateName: ptr.To(template)}, podGroup, priorityClass)
}

// createGPUPod runs hello with the claim (named "gpu") given.
func (s *server) createGPUPod(t *testing.T, name string, claim corev1.PodResourceClaim, podGroup, priorityClass string) {
	t.Helper()
	spec := restricted(corev1.PodSpec{
		PriorityClassName: priorityClass,
		ResourceClaims:    []corev1.PodResourceClaim{claim},
		Containers: []corev1.Container{{
			Name: "main", Image: "localhost:5000/hello:v1",
			Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpu"}}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
				PeriodSeconds: 1},
		}},
	})
	if podGroup != "" {
		spec.SchedulingGroup = &corev1.PodSchedulingGroup{PodGroupName: ptr.To(podGroup)}
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"e2e": "gpu"}}, Spec: spec}
	if _, err := s.client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
}

func (s *server) deleteGPUPods(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	defer func() { t.Logf("GPU pods and claims gone in %s", time.Since(start).Round(time.Millisecond)) }()
	_ = s.client.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{LabelSelector: "e2e=gpu"})
	waitFor(t, 60*time.Second, "GPU pods and their claims to go", func(ctx context.Context) (bool, error) {
		pods, err := s.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "e2e=gpu"})
		if err != nil || len(pods.Items) > 0 {
			return false, nil
		}
		claims, err := s.client.ResourceV1().ResourceClaims("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(claims.Items) == 0, nil
	})
}

func (s *server) waitRunning(t *testing.T, name string) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("%s ready after %s", name, time.Since(start).Round(time.Millisecond)) }()
	waitFor(t, 90*time.Second, name+" to run", func(ctx context.Context) (bool, error) {
		p, err := s.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil && testpods.Ready(p), nil
	})
}

// stillPending fails if name is bound to a node now or within d.
func (s *server) stillPending(t *testing.T, name string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		p, err := s.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "" {
			t.Fatalf("%s was placed on %s; it must stay pending", name, p.Spec.NodeName)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (s *server) waitEvent(t *testing.T, pod, reason, text string) {
	t.Helper()
	var last string
	waitFor(t, 60*time.Second, fmt.Sprintf("event %s on %s", reason, pod), func(ctx context.Context) (bool, error) {
		evs, err := s.client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
		if err != nil {
			return false, nil
		}
		for _, e := range evs.Items {
			if e.Reason == reason {
				last = e.Message
				if strings.Contains(e.Message, text) {
					return true, nil
				}
			}
		}
		return false, nil
	})
	t.Logf("%s: %s", pod, last)
}

// podEnv reads the GPU variables a pod sees, from hello's /env.
func (s *server) podEnv(t *testing.T, name string) map[string]string {
	t.Helper()
	s.waitRunning(t, name)
	p, err := s.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + p.Status.PodIP + ":8080/env")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && (strings.Contains(k, "GPU") || strings.Contains(k, "CUDA") || strings.HasPrefix(k, "NVIDIA_")) {
			env[k] = v
		}
	}
	return env
}
