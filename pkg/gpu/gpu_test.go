package gpu

import (
	"slices"
	"testing"

	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

func TestDeviceIndex(t *testing.T) {
	for _, tc := range []struct {
		name  string
		index int
		ok    bool
	}{
		{DeviceName(0), 0, true},
		{DeviceName(127), 127, true},
		{"gpu-", 0, false},
		{"gpu-01", 0, false},
		{"gpu--1", 0, false},
		{"gpu-+1", 0, false},
		{"nic-0", 0, false},
	} {
		if i, ok := DeviceIndex(tc.name); i != tc.index || ok != tc.ok {
			t.Errorf("DeviceIndex(%q) = %d, %v; want %d, %v", tc.name, i, ok, tc.index, tc.ok)
		}
	}
}

func TestAttribute(t *testing.T) {
	for _, tc := range []struct {
		name  string
		attrs map[resourcev1.QualifiedName]resourcev1.DeviceAttribute
		want  string
	}{
		{"bare", map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{AttrModel: {StringValue: ptr.To("T4")}}, "T4"},
		{"qualified", map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{"gpu.strata.dev/model": {StringValue: ptr.To("T4")}}, "T4"},
		{"other domain", map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{"example.com/model": {StringValue: ptr.To("T4")}}, ""},
	} {
		a, ok := Attribute(&resourcev1.Device{Attributes: tc.attrs}, AttrModel)
		got := ""
		if ok {
			got = *a.StringValue
		}
		if got != tc.want {
			t.Errorf("%s: model %q, want %q", tc.name, got, tc.want)
		}
	}
	if q := Qualified(AttrUUID); q != "gpu.strata.dev/uuid" {
		t.Errorf("Qualified(uuid) = %q", q)
	}
}

func TestConsumed(t *testing.T) {
	for _, tc := range []struct {
		name          string
		consumed      map[resourcev1.QualifiedName]resource.Quantity
		milli, memory int64
	}{
		{"exclusive", nil, MilliPerGPU, 0},
		{"share", map[resourcev1.QualifiedName]resource.Quantity{CapacityCompute: resource.MustParse("250")}, 250, 0},
		{"share with memory", map[resourcev1.QualifiedName]resource.Quantity{
			CapacityCompute: resource.MustParse("100"), CapacityMemory: resource.MustParse("40Gi")}, 100, 40 << 30},
	} {
		milli, mem := Consumed(&resourcev1.DeviceRequestAllocationResult{ConsumedCapacity: tc.consumed})
		if milli != tc.milli || mem != tc.memory {
			t.Errorf("%s: Consumed = %d, %d; want %d, %d", tc.name, milli, mem, tc.milli, tc.memory)
		}
	}
}

func TestModelSelectorRoundTrip(t *testing.T) {
	m := []string{"A10", "G2", `with "quotes"`}
	if got := ModelsFromSelector(ModelSelector(m)); !slices.Equal(got, m) {
		t.Errorf("round trip = %v", got)
	}
	if got := ModelSelector([]string{"V100M16", "V100M32"}); got != `device.attributes["gpu.strata.dev"].model in ["V100M16", "V100M32"]` {
		t.Errorf("selector %s", got)
	}
	if got := ModelsFromSelector(`device.attributes["gpu.strata.dev"].memory > 1`); got != nil {
		t.Errorf("foreign selector parsed as %v", got)
	}
}
