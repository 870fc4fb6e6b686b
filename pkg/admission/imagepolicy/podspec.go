package imagepolicy

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// containerImage is one image in an object, with the JSON pointer of its
// field so the mutating webhook can patch just that field (re-encoding the
// whole object could drop fields this binary's API types do not know).
type containerImage struct {
	Image string
	Path  string // JSON pointer, e.g. /spec/template/spec/containers/0/image
	Field string // for messages, e.g. spec.template.spec.containers[app].image
}

// podSpecPaths maps each kind the webhook handles to where its pod spec
// sits, as a JSON pointer and as a field path for messages.
var podSpecPaths = map[string]struct{ pointer, field string }{
	"Pod":         {"/spec", "spec"},
	"Deployment":  {"/spec/template/spec", "spec.template.spec"},
	"StatefulSet": {"/spec/template/spec", "spec.template.spec"},
	"DaemonSet":   {"/spec/template/spec", "spec.template.spec"},
	"ReplicaSet":  {"/spec/template/spec", "spec.template.spec"},
	"Job":         {"/spec/template/spec", "spec.template.spec"},
	"CronJob":     {"/spec/jobTemplate/spec/template/spec", "spec.jobTemplate.spec.template.spec"},
}

// imagesOf decodes raw as kind and lists its container images. An empty
// raw (a DELETE's object) has none.
func imagesOf(kind string, raw []byte) ([]containerImage, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	paths, ok := podSpecPaths[kind]
	if !ok {
		return nil, fmt.Errorf("kind %s carries no pod spec this webhook knows", kind)
	}
	spec, err := decodePodSpec(kind, raw)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", kind, err)
	}
	var out []containerImage
	add := func(list string, i int, name, image string) {
		out = append(out, containerImage{
			Image: image,
			Path:  fmt.Sprintf("%s/%s/%d/image", paths.pointer, list, i),
			Field: fmt.Sprintf("%s.%s[%s].image", paths.field, list, name),
		})
	}
	for i, c := range spec.InitContainers {
		add("initContainers", i, c.Name, c.Image)
	}
	for i, c := range spec.Containers {
		add("containers", i, c.Name, c.Image)
	}
	for i, c := range spec.EphemeralContainers {
		add("ephemeralContainers", i, c.Name, c.Image)
	}
	return out, nil
}

func decodePodSpec(kind string, raw []byte) (*corev1.PodSpec, error) {
	switch kind {
	case "Pod":
		var o corev1.Pod
		err := json.Unmarshal(raw, &o)
		return &o.Spec, err
	case "Deployment":
		var o appsv1.Deployment
		err := json.Unmarshal(raw, &o)
		return &o.Spec.Template.Spec, err
	case "StatefulSet":
		var o appsv1.StatefulSet
		err := json.Unmarshal(raw, &o)
		return &o.Spec.Template.Spec, err
	case "DaemonSet":
		var o appsv1.DaemonSet
		err := json.Unmarshal(raw, &o)
		return &o.Spec.Template.Spec, err
	case "ReplicaSet":
		var o appsv1.ReplicaSet
		err := json.Unmarshal(raw, &o)
		return &o.Spec.Template.Spec, err
	case "Job":
		var o batchv1.Job
		err := json.Unmarshal(raw, &o)
		return &o.Spec.Template.Spec, err
	case "CronJob":
		var o batchv1.CronJob
		err := json.Unmarshal(raw, &o)
		return &o.Spec.JobTemplate.Spec.Template.Spec, err
	}
	return nil, fmt.Errorf("unknown kind %s", kind)
}
