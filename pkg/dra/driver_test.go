package dra

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestStartPublishes starts the driver as the node would (unix sockets in
// temporary kubelet dirs, a fake API server) and waits for its slice.
func TestStartPublishes(t *testing.T) {
	dir := t.TempDir()
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := Start(ctx, Config{
		NodeName:      "n1",
		Client:        client,
		RegistrarDir:  filepath.Join(dir, "kubelet", "plugins_registry"),
		PluginDataDir: filepath.Join(dir, "kubelet", "plugins", DriverName),
		CDIDir:        filepath.Join(dir, "cdi"),
		StateDir:      filepath.Join(dir, "state"),
		Inventory:     Options{Backend: BackendSimulated, Simulated: "2xA100-80GB"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	if len(d.GPUs()) != 2 {
		t.Fatalf("GPUs %+v", d.GPUs())
	}
	for _, sock := range []string{filepath.Join(dir, "kubelet", "plugins_registry", DriverName+"-reg.sock"), filepath.Join(dir, "kubelet", "plugins", DriverName, "dra.sock")} {
		if _, err := os.Stat(sock); err != nil {
			t.Errorf("socket: %v", err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		slices, err := client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(slices.Items) == 1 {
			s := slices.Items[0]
			if s.Spec.Driver != DriverName || s.Spec.Pool.Name != "n1" || *s.Spec.NodeName != "n1" || len(s.Spec.Devices) != 2 {
				t.Fatalf("slice %+v", s.Spec)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d slices published", len(slices.Items))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStartNeedsConfig(t *testing.T) {
	if _, err := Start(context.Background(), Config{}); err == nil {
		t.Fatal("started without a node name")
	}
	if _, err := Start(context.Background(), Config{NodeName: "n1", Client: fake.NewClientset()}); err == nil {
		t.Fatal("started without a state dir")
	}
}
