package dra

// This test imports the API server's own validation of resource.k8s.io
// (k8s.io/kubernetes); only the test binary links it, the package does not.

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	"k8s.io/kubernetes/pkg/apis/resource"
	_ "k8s.io/kubernetes/pkg/apis/resource/install"
	resourcev1conv "k8s.io/kubernetes/pkg/apis/resource/v1"
	"k8s.io/kubernetes/pkg/apis/resource/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

func TestPublishedObjectsValidate(t *testing.T) {
	gpus, err := ParseSimulated("2xA100-80GB,1xT4-16GB", "n1")
	if err != nil {
		t.Fatal(err)
	}
	res := DriverResources("n1", gpus)
	slice := &resourcev1.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "n1-gpu.strata.dev-x"},
		Spec: resourcev1.ResourceSliceSpec{
			Driver: DriverName, NodeName: ptr.To("n1"),
			Pool:    resourcev1.ResourcePool{Name: "n1", ResourceSliceCount: 1},
			Devices: res.Pools["n1"].Slices[0].Devices,
		},
	}
	var internalSlice resource.ResourceSlice
	if err := resourcev1conv.Convert_v1_ResourceSlice_To_resource_ResourceSlice(slice, &internalSlice, nil); err != nil {
		t.Fatal(err)
	}
	if errs := validation.ValidateResourceSlice(&internalSlice); len(errs) > 0 {
		t.Errorf("ResourceSlice: %v", errs)
	}
	var class resource.DeviceClass
	if err := resourcev1conv.Convert_v1_DeviceClass_To_resource_DeviceClass(DeviceClass(), &class, nil); err != nil {
		t.Fatal(err)
	}
	if errs := validation.ValidateDeviceClass(&class); len(errs) > 0 {
		t.Errorf("DeviceClass: %v", errs)
	}
}

// exampleTemplates reads the ResourceClaimTemplates of examples/gpu.
func exampleTemplates(t *testing.T) map[string]*resourcev1.ResourceClaimTemplate {
	files, err := filepath.Glob("../../examples/gpu/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	out := map[string]*resourcev1.ResourceClaimTemplate{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if err != nil {
				break
			}
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if meta.Kind != "ResourceClaimTemplate" {
				continue
			}
			var tmpl resourcev1.ResourceClaimTemplate
			if err := yaml.UnmarshalStrict(doc, &tmpl); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			legacyscheme.Scheme.Default(&tmpl) // as the API server does
			out[tmpl.Name] = &tmpl
		}
	}
	return out
}

func TestExamplesValidateAndAllocate(t *testing.T) {
	templates := exampleTemplates(t)
	for _, name := range []string{"whole-gpu", "two-gpus", "gpu-share-250"} {
		if templates[name] == nil {
			t.Fatalf("examples/gpu has no ResourceClaimTemplate %s", name)
		}
	}
	for name, tmpl := range templates {
		tmpl.Namespace = "default"
		var internal resource.ResourceClaimTemplate
		if err := resourcev1conv.Convert_v1_ResourceClaimTemplate_To_resource_ResourceClaimTemplate(tmpl, &internal, nil); err != nil {
			t.Fatal(err)
		}
		if errs := validation.ValidateResourceClaimTemplate(&internal); len(errs) > 0 {
			t.Errorf("%s: %v", name, errs)
		}
	}
	claim := func(name string) *resourcev1.ResourceClaim {
		return &resourcev1.ResourceClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec:       templates[name].Spec.Spec,
		}
	}
	c := newCluster(t, "3xA100-80GB")
	if a := c.allocate(claim("two-gpus")); a == nil || len(a.Devices.Results) != 2 {
		t.Fatalf("two-gpus: %v", a)
	}
	for i := range 4 {
		a := c.allocate(claim("gpu-share-250"))
		if a == nil || devicesOf(a)[0] != "gpu-2:250" {
			t.Fatalf("share %d: %v", i, a)
		}
	}
	if a := c.allocate(claim("whole-gpu")); a != nil {
		t.Fatalf("whole-gpu allocated on a full node: %v", devicesOf(a))
	}
}
