package v1alpha1

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Bounds of the pod annotation (ImportNameKey). The annotation is written by whoever may create
// pods, and the webhook reads the API once per name it finds: the bounds cap that work before
// any read. A pod that really needs more imports than MaxImportsPerPod is better split.
const (
	// MaxImportsPerPod is the most import names one pod may ask for.
	MaxImportsPerPod = 32
	// MaxImportAnnotationLength bounds the annotation's value in bytes: MaxImportsPerPod names
	// of the longest legal length, with separators.
	MaxImportAnnotationLength = MaxImportsPerPod * (maxObjectName + 2)
)

// ParseImportNames reads the value of the pod annotation ImportNameKey: comma-separated import
// names, spaces trimmed, empty entries and duplicates dropped, in order. Each name must be a
// valid object name; a name such as `other-namespace/x` is refused because a pod can only use
// the imports of its own namespace. The value is checked against MaxImportAnnotationLength before
// it is split, and the names against MaxImportsPerPod. The automount webhook and the plugin's
// `mounts` read the annotation with it, so that both see the same names.
func ParseImportNames(value string) ([]string, error) {
	if len(value) > MaxImportAnnotationLength {
		return nil, fmt.Errorf("annotation %s: %d bytes, more than the %d allowed: name at most %d imports, comma-separated",
			ImportNameKey, len(value), MaxImportAnnotationLength, MaxImportsPerPod)
	}
	var names, invalid []string
	seen := map[string]bool{}
	for field := range strings.SplitSeq(value, ",") {
		name := strings.TrimSpace(field)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			invalid = append(invalid, fmt.Sprintf("%q (%s)", name, strings.Join(errs, "; ")))
			continue
		}
		names = append(names, name)
	}
	if len(invalid) > 0 {
		return nil, fmt.Errorf("annotation %s: invalid ServiceAccountImport name(s) %s: give names of imports in the pod's own namespace, comma-separated",
			ImportNameKey, strings.Join(invalid, ", "))
	}
	if len(names) > MaxImportsPerPod {
		return nil, fmt.Errorf("annotation %s: %d imports, more than the %d a pod may use: split the workload, or use fewer imports",
			ImportNameKey, len(names), MaxImportsPerPod)
	}
	return names, nil
}
