package grant_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
)

func TestAnchorName(t *testing.T) {
	if got, want := grant.AnchorName("cluster1", "pod-lister"), "mcsa-anchor.cluster1.pod-lister"; got != want {
		t.Errorf("AnchorName = %q, want %q", got, want)
	}
	label := strings.Repeat("a", 63)
	long := strings.Repeat("b", 60) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 63)
	pairs := [][2]string{
		{"cluster1", "pod-lister"},
		{"cluster1", "pod.lister"},
		{"a-b", "c"}, {"a", "b-c"},
		{label, "x"}, {label, long}, {label, long[:len(long)-1]}, {label, long[:200] + "-f"}, {label, long[:200] + ".f"},
		{"a", long}, {"b", long}, {label[:62], long}, {"c", long[:187]}, {"c", long[:189]}, {"c", long[:190]}, {"c", long[:240] + "-" + long[:10]},
	}
	seen := map[string][2]string{}
	for _, p := range pairs {
		if len(validation.IsDNS1123Label(p[0])) > 0 || len(validation.IsDNS1123Subdomain(p[1])) > 0 {
			continue // not legal inputs
		}
		name := grant.AnchorName(p[0], p[1])
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("AnchorName(%q, %q) = %q: %v", p[0], p[1], name, errs)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("AnchorName(%q, %q) = AnchorName(%q, %q) = %q", p[0], p[1], prev[0], prev[1], name)
		}
		seen[name] = p
		if grant.AnchorName(p[0], p[1]) != name {
			t.Errorf("AnchorName(%q, %q) is not deterministic", p[0], p[1])
		}
	}
}

func TestAnchor(t *testing.T) {
	a := grant.Anchor("cluster1", "default", "pod-lister")
	if a.Namespace != "default" || len(a.Data) != 0 || len(a.Finalizers) != 0 || !grant.Selector("cluster1").Matches(labels.Set(a.Labels)) {
		t.Errorf("Anchor = %+v", a)
	}
	if got := grant.AnchorServiceAccount(a, "cluster1"); got != "pod-lister" {
		t.Errorf("AnchorServiceAccount = %q", got)
	}
	if got := grant.AnchorServiceAccount(a, "cluster3"); got != "" {
		t.Errorf("AnchorServiceAccount for another cluster = %q", got)
	}
	c := grant.ClusterCredentialAnchor("cluster1")
	if c.Namespace != grant.Namespace || c.Name != grant.AnchorName("cluster1", grant.ServiceAccountName("cluster1")) {
		t.Errorf("ClusterCredentialAnchor = %s/%s", c.Namespace, c.Name)
	}
	ref := grant.BoundObjectRef("cluster1", "pod-lister")
	if ref.Kind != "Secret" || ref.APIVersion != "v1" || ref.Name != a.Name || ref.UID != "" {
		t.Errorf("BoundObjectRef = %+v", ref)
	}
}
