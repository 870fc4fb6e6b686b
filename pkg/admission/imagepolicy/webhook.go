package imagepolicy

import (
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Paths the handlers are served on.
const (
	MutatePath         = "/imagepolicy/mutate"
	ValidatePath       = "/imagepolicy/validate"
	ValidatePolicyPath = "/imagepolicy/validate-policy"
)

// ConfigurationName names both webhook configurations.
const ConfigurationName = "strata-image-policy"

// ExemptLabel on a namespace, with value "exempt", takes the namespace out
// of image verification (for break-glass use; labelling namespaces needs
// cluster-level rights).
const ExemptLabel = "security.strata.dev/image-policy"

// Options configures the webhook.
type Options struct {
	Unmatched Unmatched
	// Timeout bounds the registry work of one admission request.
	Timeout time.Duration
	// CacheSize and CacheTTL bound the cache of verified digests; CacheTTL
	// is also how long a revoked (deleted) signature may still admit.
	CacheSize int
	CacheTTL  time.Duration
	// SecretTTL is how often keys read from Secrets are read again.
	SecretTTL time.Duration
}

// DefaultOptions are the defaults of strata server's flags.
func DefaultOptions() Options {
	return Options{Unmatched: UnmatchedDeny, Timeout: 5 * time.Second, CacheSize: 10000, CacheTTL: 5 * time.Minute, SecretTTL: time.Minute}
}

// TimeoutSeconds is the webhooks' timeoutSeconds: twice the default
// verification deadline, so our own deadline always fires first.
const TimeoutSeconds = 10

// Setup serves the webhooks on mgr's webhook server.
func Setup(mgr manager.Manager, o Options) *Admitter {
	a := &Admitter{
		Policies: &Store{
			Reader:    mgr.GetCache(),
			Secrets:   SecretReader{Reader: mgr.GetAPIReader()},
			SecretTTL: o.SecretTTL,
		},
		Verifier:  NewVerifier(o.CacheSize, o.CacheTTL),
		Unmatched: o.Unmatched,
		Timeout:   o.Timeout,
	}
	srv := mgr.GetWebhookServer()
	srv.Register(MutatePath, &webhook.Admission{Handler: a.Mutator()})
	srv.Register(ValidatePath, &webhook.Admission{Handler: a.Validator()})
	srv.Register(ValidatePolicyPath, &webhook.Admission{Handler: PolicyValidator()})
	return a
}

// Configurations returns the webhook configurations; clientConfig says how
// the API server reaches a path (a URL for strata server, a Service when
// installed into another cluster).
func Configurations(clientConfig func(path string) admissionregistrationv1.WebhookClientConfig) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	workloads := []admissionregistrationv1.RuleWithOperations{
		rule("", "v1", "pods"),
		{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update}, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/ephemeralcontainers"}, Scope: ptr.To(admissionregistrationv1.NamespacedScope),
		}},
		rule("apps", "v1", "deployments", "statefulsets", "daemonsets", "replicasets"),
		rule("batch", "v1", "jobs", "cronjobs"),
	}
	notExempt := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: ExemptLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"exempt"},
	}}}
	fail, match, side := ptr.To(admissionregistrationv1.Fail), ptr.To(admissionregistrationv1.Equivalent), ptr.To(admissionregistrationv1.SideEffectClassNone)
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "pin-digests.images.security.strata.dev",
			ClientConfig:            clientConfig(MutatePath),
			Rules:                   workloads,
			FailurePolicy:           fail,
			MatchPolicy:             match,
			SideEffects:             side,
			NamespaceSelector:       notExempt,
			TimeoutSeconds:          ptr.To[int32](TimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
			// Another webhook that changes an image after us gets its tag
			// pinned too.
			ReinvocationPolicy: ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
			// Objects whose images are all pinned already (pods created by
			// a controller from a pinned template) skip the call.
			MatchConditions: []admissionregistrationv1.MatchCondition{{Name: "has-unpinned-image", Expression: unpinnedImage}},
		}},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "verify.images.security.strata.dev",
			ClientConfig:            clientConfig(ValidatePath),
			Rules:                   workloads,
			FailurePolicy:           fail,
			MatchPolicy:             match,
			SideEffects:             side,
			NamespaceSelector:       notExempt,
			TimeoutSeconds:          ptr.To[int32](TimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
		}, {
			Name:                    "clusterimagepolicies.security.strata.dev",
			ClientConfig:            clientConfig(ValidatePolicyPath),
			Rules:                   []admissionregistrationv1.RuleWithOperations{rule("security.strata.dev", "v1alpha1", "clusterimagepolicies")},
			FailurePolicy:           fail,
			MatchPolicy:             match,
			SideEffects:             side,
			TimeoutSeconds:          ptr.To[int32](TimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	return mutating, validating
}

// unpinnedImage is true when a container image of the object's pod spec
// is not pinned to a digest. The API server evaluates it before calling
// the mutating webhook.
const unpinnedImage = `(request.kind.kind == 'Pod' ? [object.spec] :
  request.kind.kind == 'CronJob' ? [object.spec.jobTemplate.spec.template.spec] :
  [object.spec.template.spec]).exists(s,
  s.containers.exists(c, !c.image.contains('@')) ||
  (has(s.initContainers) && s.initContainers.exists(c, !c.image.contains('@'))) ||
  (has(s.ephemeralContainers) && s.ephemeralContainers.exists(c, !c.image.contains('@'))))`

func rule(group, version string, resources ...string) admissionregistrationv1.RuleWithOperations {
	return admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{version}, Resources: resources},
	}
}

// CheckTimeout says whether d can bound the registry work of one admission:
// above zero and below the webhook's own timeout, or the API server gives
// up first and the answer is lost.
func CheckTimeout(d time.Duration) error {
	if max := TimeoutSeconds * time.Second; d <= 0 || d >= max {
		return fmt.Errorf("--image-verify-timeout %s: use a duration above 0 and below the webhook timeout of %s, e.g. 5s", d, max)
	}
	return nil
}
