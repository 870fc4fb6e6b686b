package dra

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"tags.cncf.io/container-device-interface/pkg/cdi"

	"github.com/google/uuid"

	"github.com/strata-dev/strata/pkg/gpu"
)

// FuzzParseSimulated: any inventory string is either refused or gives
// 1..MaxGPUs GPUs whose model fits a ResourceSlice attribute.
func FuzzParseSimulated(f *testing.F) {
	for _, seed := range []string{"4xA100-80GB", "2xA100-80GB,1xT4-16GB", "1xH100-80gb # comment\n2xL4-24GB", "0xA-1GB", "x-GB", "128xA-1GB,1xB-1GB", "9223372036854775807xA-1GB", "1xA-1GB,9223372036854775807xB-1GB", "1x" + strings.Repeat("A", 70) + "-1GB"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		gpus, err := ParseSimulated(spec, "n1")
		if err != nil {
			if gpus != nil {
				t.Fatalf("error %v with GPUs %v", err, gpus)
			}
			return
		}
		if len(gpus) < 1 || len(gpus) > MaxGPUs {
			t.Fatalf("%q: %d GPUs", spec, len(gpus))
		}
		for _, g := range gpus {
			if len(g.Model) > resourcev1.DeviceAttributeMaxValueLength || g.MemoryBytes <= 0 {
				t.Fatalf("%q: GPU %+v: model longer than %d or no memory", spec, g, resourcev1.DeviceAttributeMaxValueLength)
			}
		}
	})
}

// FuzzCDISpec: a claim the API server could hold (request names are DNS
// labels, capacities non-negative) on a simulated GPU gives a CDI spec
// that CDI's own validation accepts, or a clear error.
func FuzzCDISpec(f *testing.F) {
	f.Add("3f1c2b9e-8d7a-4c55-b0a1-2e3f4a5b6c7d", "gpu", "", int64(250), int64(10<<30))
	f.Add("0b1c2b9e-8d7a-4c55-b0a1-2e3f4a5b6c7d", "train", "worker", int64(0), int64(0))
	f.Add("ffffffff-ffff-ffff-ffff-ffffffffffff", "a", "b", int64(1000), int64(80<<30))
	f.Fuzz(func(t *testing.T, uid, request, sub string, compute, memory int64) {
		if errs := validation.IsDNS1123Label(request); len(errs) > 0 {
			return
		}
		if sub != "" {
			if errs := validation.IsDNS1123Label(sub); len(errs) > 0 {
				return
			}
			request += "/" + sub
		}
		// The API server gives every object a UUID.
		if _, err := uuid.Parse(uid); err != nil || compute < 0 || memory < 0 {
			return
		}
		s := newTestState(t, tempDirs(t), "1xA100-80GB")
		claim := allocatedClaim("c", nil, share{request: request, device: "gpu-0"})
		claim.UID = types.UID(uid)
		r := &claim.Status.Allocation.Devices.Results[0]
		r.ConsumedCapacity = map[resourcev1.QualifiedName]resource.Quantity{
			gpu.CapacityCompute: *resource.NewQuantity(compute, resource.DecimalSI),
			gpu.CapacityMemory:  *resource.NewQuantity(memory, resource.BinarySI),
		}
		c, err := s.newPreparedClaim(claim)
		if err != nil {
			return
		}
		raw, err := json.Marshal(c.Spec)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "fuzz.json")
		if err := os.WriteFile(file, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := cdi.ReadSpec(file, 0); err != nil {
			t.Fatalf("CDI refuses the spec for request %q, uid %q: %v\n%s", request, uid, err, raw)
		}
	})
}
