package function

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	servingv1 "github.com/strata-dev/strata/api/serving/v1alpha1"
	"github.com/strata-dev/strata/config/crd"
)

// functionSchema is the Function CRD's v1alpha1 schema as the API server
// applies it: pruning, defaults, OpenAPI validation and the CEL rules.
type functionSchema struct {
	structural *structuralschema.Structural
	openAPI    validation.SchemaValidator
	cel        *cel.Validator
}

func loadFunctionSchema(tb testing.TB) *functionSchema {
	tb.Helper()
	data, err := crd.Files.ReadFile("serving.strata.dev_functions.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	var def apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &def); err != nil {
		tb.Fatal(err)
	}
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(def.Spec.Versions[0].Schema.OpenAPIV3Schema, &internal, nil); err != nil {
		tb.Fatal(err)
	}
	s := &functionSchema{}
	if s.structural, err = structuralschema.NewStructural(&internal); err != nil {
		tb.Fatal(err)
	}
	if s.openAPI, _, err = validation.NewSchemaValidator(&internal); err != nil {
		tb.Fatal(err)
	}
	s.cel = cel.NewValidator(s.structural, true, celconfig.PerCallLimit)
	return s
}

// admit runs obj through the schema as a create would and returns the
// errors the API server would answer with.
func (s *functionSchema) admit(obj map[string]any) field.ErrorList {
	structuralpruning.Prune(obj, s.structural, true)
	structuraldefaulting.Default(obj, s.structural)
	errs := validation.ValidateCustomResource(nil, obj, s.openAPI)
	celErrs, _ := s.cel.Validate(context.Background(), nil, s.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}

// FuzzFunctionAdmission: any Function spec the API server admits (the
// CRD's schema and CEL rules) becomes a Deployment and Service the
// controller can write: one container running spec.image, PORT set once,
// and a replica count within [minScale, maxScale] as the user reads them.
// A spec the API server refuses is refused with a field path.
func FuzzFunctionAdmission(f *testing.F) {
	for _, seed := range []string{
		`{"image":"localhost:5000/hello:v1","runtime":"container","port":8080,"maxScale":5,"scaleToZeroGracePeriod":"30s"}`,
		`{"image":"localhost:5000/wasm-http:v1","runtime":"wasm","minScale":1,"env":[{"name":"PORT","value":"9000"}]}`,
		`{"image":"x","minScale":3,"maxScale":2}`,
		`{"image":"","port":0}`,
		`{"image":"x","memory":"64Mi","timeout":"1m","targetConcurrency":100}`,
		`{"image":"x","env":[{"name":"A"},{"name":"A"}]}`,
		`{"image":"x","minScale":50}`, // capped at the default maxScale of 10 until MaxReplicas honoured it
	} {
		f.Add(seed)
	}
	schema := loadFunctionSchema(f)
	f.Fuzz(func(t *testing.T, spec string) {
		var s any
		if json.Unmarshal([]byte(spec), &s) != nil {
			return
		}
		obj := map[string]any{
			"apiVersion": "serving.strata.dev/v1alpha1", "kind": "Function",
			"metadata": map[string]any{"name": "fn", "namespace": "default"},
			"spec":     s,
		}
		if errs := schema.admit(obj); len(errs) > 0 {
			for _, e := range errs {
				if !strings.HasPrefix(e.Field, "spec") {
					t.Fatalf("refusal without a spec field: %v", e)
				}
			}
			return
		}
		// What the controller decodes: the admitted object's JSON.
		data, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		var fn servingv1.Function
		if err := json.Unmarshal(data, &fn); err != nil {
			t.Fatalf("admitted Function does not decode: %v\n%s", err, data)
		}
		var d appsv1.Deployment
		mutateDeployment(&d, &fn)
		c := d.Spec.Template.Spec.Containers
		if len(c) != 1 || c[0].Image != fn.Spec.Image {
			t.Fatalf("containers %+v for image %q", c, fn.Spec.Image)
		}
		ports := 0
		for _, e := range c[0].Env {
			if e.Name == "PORT" {
				ports++
			}
		}
		if ports != 1 {
			t.Fatalf("PORT set %d times in %+v", ports, c[0].Env)
		}
		r := ptr.Deref(d.Spec.Replicas, -1)
		if fn.Spec.MinScale != nil && r < *fn.Spec.MinScale {
			t.Fatalf("%d replicas, below minScale %d (maxScale %v)", r, *fn.Spec.MinScale, fn.Spec.MaxScale)
		}
		if fn.Spec.MaxScale != nil && r > *fn.Spec.MaxScale {
			t.Fatalf("%d replicas, above maxScale %d", r, *fn.Spec.MaxScale)
		}
		if fn.Spec.MinReplicas() > fn.Spec.MaxReplicas() {
			t.Fatalf("admitted a spec whose scale bounds cross: min %d, max %d", fn.Spec.MinReplicas(), fn.Spec.MaxReplicas())
		}
	})
}

// TestFunctionSchema keeps the fuzz target honest: the schema it loads
// refuses what the API server refuses, with the field and rule.
func TestFunctionSchema(t *testing.T) {
	schema := loadFunctionSchema(t)
	for _, tt := range []struct {
		spec string
		want string // "" when admitted
	}{
		{`{"image":"localhost:5000/hello:v1","maxScale":5}`, ""},
		{`{"image":"x","minScale":3,"maxScale":2}`, "minScale must not be greater than maxScale"},
		{`{"image":""}`, "spec.image"},
		{`{"image":"x","runtime":"jvm"}`, `spec.runtime: Unsupported value: "jvm"`},
		{`{"image":"x","port":70000}`, "spec.port"},
		{`{"image":"x","env":[{"name":"1A"}]}`, "spec.env[0].name"},
		{`{"image":"x","timeout":"1h30m","stableWindow":"0.5s","scaleToZeroGracePeriod":"0"}`, ""},
		{`{"image":"x","timeout":""}`, `spec.timeout: Invalid value: "": must be a duration such as 30s`},
		{`{"image":"x","stableWindow":"-5s"}`, "spec.stableWindow: Invalid value"},
		{`{"image":"x","scaleToZeroGracePeriod":"9999999h"}`, "spec.scaleToZeroGracePeriod: Invalid value"}, // would overflow time.Duration
		{`{"image":"x","scaleToZeroGracePeriod":"999999h999999h9h"}`, ""},
		{`{"image":"x","timeout":"1h1h1h1h1h1h1h1h1h"}`, "spec.timeout: Too long"},
	} {
		var spec any
		if err := json.Unmarshal([]byte(tt.spec), &spec); err != nil {
			t.Fatal(err)
		}
		errs := schema.admit(map[string]any{"apiVersion": "serving.strata.dev/v1alpha1", "kind": "Function",
			"metadata": map[string]any{"name": "fn", "namespace": "default"}, "spec": spec})
		switch {
		case tt.want == "" && len(errs) > 0:
			t.Errorf("%s refused: %v", tt.spec, errs)
		case tt.want != "" && !strings.Contains(fmt.Sprint(errs), tt.want):
			t.Errorf("%s: errors %v, want %q", tt.spec, errs, tt.want)
		}
	}
}
