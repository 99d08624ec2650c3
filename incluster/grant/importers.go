package grant

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// AnyNamespace is the importer namespace that allows every namespace of that cluster.
const AnyNamespace = "*"

// Importer is one entry of the allowed-importers annotation: a namespace (or AnyNamespace) of
// an importing cluster.
type Importer struct {
	Cluster   string
	Namespace string
}

func (i Importer) String() string { return i.Cluster + "/" + i.Namespace }

// AllowedImporters is the parsed allowed-importers annotation. It narrows, for each importing
// cluster it names, the namespaces of that cluster that may import the service account; a
// cluster it does not name is left to its RBAC grant alone. So narrowing one cluster never locks
// out another, and an empty list restricts nobody. Taking a cluster's grant away is RBAC's and
// the anchor's job (disallow), which B enforces itself; the annotation is enforced by the
// importer only.
type AllowedImporters []Importer

// ParseAllowedImporters parses `A/ns1,A/ns2,C/*`. Spaces around entries and empty entries are
// ignored; anything else that is not cluster/namespace (DNS labels, or `*` for the namespace)
// is an error, so that a typo never widens access.
func ParseAllowedImporters(s string) (AllowedImporters, error) {
	list := AllowedImporters{}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		cluster, ns, ok := strings.Cut(entry, "/")
		if !ok {
			return nil, fmt.Errorf("%s: entry %q is not CLUSTER/NAMESPACE", v1alpha1.AllowedImportersAnnotation, entry)
		}
		if errs := validation.IsDNS1123Label(cluster); len(errs) > 0 {
			return nil, fmt.Errorf("%s: entry %q: cluster name: %s", v1alpha1.AllowedImportersAnnotation, entry, strings.Join(errs, "; "))
		}
		if ns != AnyNamespace {
			if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
				return nil, fmt.Errorf("%s: entry %q: namespace: %s", v1alpha1.AllowedImportersAnnotation, entry, strings.Join(errs, "; "))
			}
		}
		list = append(list, Importer{Cluster: cluster, Namespace: ns})
	}
	return list.normalized(), nil
}

// Allows reports whether namespace of cluster may import: any namespace of a cluster the list
// does not name, only the listed ones of a cluster it names.
func (a AllowedImporters) Allows(cluster, namespace string) bool {
	named := false
	for _, i := range a {
		if i.Cluster != cluster {
			continue
		}
		if i.Namespace == AnyNamespace || i.Namespace == namespace {
			return true
		}
		named = true
	}
	return !named
}

// Names tells whether the list narrows cluster's namespaces.
func (a AllowedImporters) Names(cluster string) bool {
	return slices.ContainsFunc(a, func(i Importer) bool { return i.Cluster == cluster })
}

// With adds namespaces of cluster (the plugin's `allow --into-namespaces`).
func (a AllowedImporters) With(cluster string, namespaces ...string) AllowedImporters {
	out := slices.Clone(a)
	for _, ns := range namespaces {
		out = append(out, Importer{Cluster: cluster, Namespace: ns})
	}
	return out.normalized()
}

// String is the annotation's canonical value: sorted, without duplicates.
func (a AllowedImporters) String() string {
	parts := make([]string, len(a))
	for i, imp := range a {
		parts[i] = imp.String()
	}
	return strings.Join(parts, ",")
}

func (a AllowedImporters) normalized() AllowedImporters {
	slices.SortFunc(a, func(x, y Importer) int { return strings.Compare(x.String(), y.String()) })
	return slices.Compact(a)
}

// Allowed checks a service account's annotations: whether namespace of importingCluster may
// import it. No annotation, or one not naming importingCluster, leaves it to RBAC; an
// unparsable one allows nobody (a typo must never widen access).
func Allowed(annotations map[string]string, importingCluster, namespace string) (bool, error) {
	v, ok := annotations[v1alpha1.AllowedImportersAnnotation]
	if !ok {
		return true, nil
	}
	list, err := ParseAllowedImporters(v)
	if err != nil {
		return false, err
	}
	return list.Allows(importingCluster, namespace), nil
}
