package automount

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// Path is where the webhook is served.
const Path = "/mutate-v1-pod"

// MaxPodBytes is the largest pod the webhook reads: etcd's default request limit (1.5 MiB),
// beyond which the API server could not store the pod anyway.
const MaxPodBytes = 3 << 19

// Denial reasons, the `reason` label of the denials metric.
const (
	DenyInvalidRequest    = "InvalidRequest"
	DenyInvalidAnnotation = "InvalidAnnotation"
	DenyImportNotFound    = "ImportNotFound"
	// DenySecretConflict: a secret of a token import's secret name is not the import's.
	DenySecretConflict = "SecretConflict"
	// DenyConfigMapConflict: a ConfigMap of a federated import's ConfigMap name is not the
	// import's.
	DenyConfigMapConflict = "ConfigMapConflict"
	DenyVolumeConflict    = "VolumeConflict"
	DenyLookupFailed      = "LookupFailed"
)

// Handler mutates pod creations that ask for imports.
//
// It reads imports, and the metadata of their secrets (of their ConfigMaps for federated
// imports), from Cache when it has them, and otherwise directly from the API server: a direct
// read is never stale, so an import created just before its pod is found (the original's race),
// and a secret or ConfigMap the cache does not hold (not labelled as an import's) is still seen.
// Secrets and ConfigMaps are read as metadata only, from either. A cache hit spares a pod
// creation the round trips (six for three imports) that dominate its admission latency
// (docs/performance.md).
type Handler struct {
	// Reader must read from the API server directly.
	Reader client.Reader
	// Cache is read first when set; see Options.Cache.
	Cache   client.Reader
	Decoder admission.Decoder
}

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp, outcome, reason := h.handle(ctx, req)
	admissionDuration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	switch outcome {
	case outcomeMutated:
		mutations.Inc()
	case outcomeDenied:
		denials.WithLabelValues(reason).Inc()
	}
	return resp
}

const (
	outcomeMutated   = "mutated"
	outcomeUnchanged = "unchanged"
	outcomeDenied    = "denied"
)

func (h *Handler) handle(ctx context.Context, req admission.Request) (admission.Response, string, string) {
	log := logf.FromContext(ctx)
	deny := func(reason, msg string) (admission.Response, string, string) {
		log.Info("Denied pod", "reason", reason, "message", msg)
		return admission.Denied(msg), outcomeDenied, reason
	}
	if req.Operation != admissionv1.Create || req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return admission.Allowed("not a pod creation"), outcomeUnchanged, ""
	}
	// Refused before decoding: a pod this large could not be stored anyway, and decoding and
	// patching it would cost the webhook what the caller chooses.
	if n := len(req.Object.Raw); n > MaxPodBytes {
		return deny(DenyInvalidRequest, fmt.Sprintf("the pod is %d bytes, more than the %d bytes an object may take in etcd: make it smaller", n, MaxPodBytes))
	}
	pod := &corev1.Pod{}
	if err := h.Decoder.Decode(req, pod); err != nil {
		return deny(DenyInvalidRequest, "cannot decode the pod: "+err.Error())
	}
	names, err := v1alpha1.ParseImportNames(pod.Annotations[v1alpha1.ImportNameKey])
	if err != nil {
		return deny(DenyInvalidAnnotation, err.Error())
	}
	if len(names) == 0 {
		return admission.Allowed("no ServiceAccountImport requested"), outcomeUnchanged, ""
	}
	// Pods made by controllers (a Job's, a ReplicaSet's) may come without a namespace in the
	// object; the request always has it.
	namespace := req.Namespace
	if namespace == "" {
		namespace = pod.Namespace
	}

	var missing, warnings []string
	mounts := make([]Mount, 0, len(names))
	for _, name := range names {
		imp := &v1alpha1.ServiceAccountImport{}
		if err := h.get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, imp); err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, name)
				continue
			}
			log.Error(err, "Reading a ServiceAccountImport", "import", name)
			return errored(fmt.Errorf("reading ServiceAccountImport %s/%s: %w", namespace, name, err))
		}
		mounts = append(mounts, MountFor(imp))
		check, kind, conflictReason := h.checkSecret, "secret", DenySecretConflict
		if v1alpha1.IsFederated(imp) {
			check, kind, conflictReason = h.checkConfigMap, "ConfigMap", DenyConfigMapConflict
		}
		warning, err := check(ctx, imp)
		var conflict *conflictError
		switch {
		case errors.As(err, &conflict):
			return deny(conflictReason, conflict.msg)
		case err != nil:
			// The check only informs; a failed read must not block the pod.
			log.Error(err, "Checking the "+kind+" of a ServiceAccountImport", "import", name)
		case warning != "":
			warnings = append(warnings, warning)
		}
	}
	if len(missing) > 0 {
		return deny(DenyImportNotFound, missingMessage(namespace, missing))
	}

	ops, err := PatchPod(pod, mounts)
	if err != nil {
		return deny(DenyVolumeConflict, err.Error())
	}
	if len(ops) == 0 {
		return admission.Allowed("ServiceAccountImports already mounted").WithWarnings(warnings...), outcomeUnchanged, ""
	}
	log.V(1).Info("Mounting ServiceAccountImports", "imports", names)
	return admission.Patched("", ops...).WithWarnings(warnings...), outcomeMutated, ""
}

// errored fails the request: with failurePolicy Fail the pod is refused, and the API server
// reports the message.
func errored(err error) (admission.Response, string, string) {
	return admission.Errored(http.StatusInternalServerError, err), outcomeDenied, DenyLookupFailed
}

// checkSecret returns a warning when the import's secret is not written yet, and a
// conflictError when a secret of that name exists but is not the import's: the importer never
// overwrites such a secret, so the pod would mount foreign credentials.
func (h *Handler) checkSecret(ctx context.Context, imp *v1alpha1.ServiceAccountImport) (string, error) {
	return h.checkOwned(ctx, imp, "secret", corev1.SchemeGroupVersion.WithKind("Secret"), v1alpha1.SecretName(imp.Name))
}

// checkConfigMap is checkSecret for a federated import, whose pods mount, beside their own
// token, the ConfigMap the importer writes (v1alpha1.FederatedConfigMapName): a foreign one
// would send the pod's token to a server of someone else's choosing.
func (h *Handler) checkConfigMap(ctx context.Context, imp *v1alpha1.ServiceAccountImport) (string, error) {
	return h.checkOwned(ctx, imp, "ConfigMap", corev1.SchemeGroupVersion.WithKind("ConfigMap"), v1alpha1.FederatedConfigMapName(imp.Name))
}

// checkOwned reads the metadata of the object of kind gvk and name that the importer writes for
// imp: a warning when it does not exist yet, a conflictError when it is not owned by imp.
func (h *Handler) checkOwned(ctx context.Context, imp *v1alpha1.ServiceAccountImport, kind string, gvk schema.GroupVersionKind, name string) (string, error) {
	key := client.ObjectKey{Namespace: imp.Namespace, Name: name}
	// Metadata only, from the cache as from the API server: ownership is all the check needs,
	// and the controller's cache holds nothing else of the importer's secrets and ConfigMaps
	// (Options.Cache). Getting a *corev1.Secret or *corev1.ConfigMap from the cache would start
	// an informer of whole objects.
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(gvk)
	if h.Cache == nil || h.Cache.Get(ctx, key, obj) != nil {
		err := h.Reader.Get(ctx, key, obj)
		if apierrors.IsNotFound(err) {
			return notWrittenWarning(imp, kind, name), nil
		}
		if err != nil {
			return "", err
		}
	}
	owner := metav1.GetControllerOf(obj)
	if owner == nil || owner.UID != imp.UID {
		return "", &conflictError{fmt.Sprintf(
			"%s %q in namespace %q is not ServiceAccountImport %q's (it is not owned by it), so the importer never writes it: delete or rename that %s",
			kind, name, imp.Namespace, imp.Name, kind)}
	}
	return "", nil
}

// get reads from the cache, falling back to a direct read on a miss or an error.
func (h *Handler) get(ctx context.Context, key client.ObjectKey, obj client.Object) error {
	if h.Cache != nil && h.Cache.Get(ctx, key, obj) == nil {
		return nil
	}
	return h.Reader.Get(ctx, key, obj)
}

func notWrittenWarning(imp *v1alpha1.ServiceAccountImport, kind, name string) string {
	msg := fmt.Sprintf("ServiceAccountImport %q has no %s %q yet: the pod starts once the importer writes it", imp.Name, kind, name)
	if c := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Status != metav1.ConditionTrue {
		detail := c.Reason
		if c.Message != "" {
			detail += ": " + c.Message
		}
		// Warnings are meant to be short; the import's status has the whole message.
		if len(detail) > 120 {
			detail = detail[:117] + "..."
		}
		msg += " (" + detail + ")"
	}
	return msg
}

func missingMessage(namespace string, missing []string) string {
	quoted := make([]string, len(missing))
	commands := make([]string, len(missing))
	for i, name := range missing {
		quoted[i] = fmt.Sprintf("%q", name)
		commands[i] = fmt.Sprintf("kubectl mcsa import %s --cluster CLUSTER --remote-namespace NS --service-account SA -n %s", name, namespace)
	}
	noun := "ServiceAccountImport"
	if len(missing) > 1 {
		noun += "s"
	}
	return fmt.Sprintf("%s %s not found in namespace %q (annotation %s); create first: %s",
		noun, strings.Join(quoted, ", "), namespace, v1alpha1.ImportNameKey, strings.Join(commands, "; "))
}
