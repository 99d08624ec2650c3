package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube/kubefake"
)

// The GitOps contract of bootstrap, allow and import: with --dry-run they write nothing, and
// what -o yaml|json prints, applied to the clusters, makes them what running the command does.

// printedList is one List printed by -o, as `kubectl apply -f` reads it.
type printedList struct {
	context string
	items   []*unstructured.Unstructured
}

// decodePrinted reads a stream of YAML documents or JSON objects, as kubectl does: each List
// with the context its annotation names, any other object as a List of its own.
func decodePrinted(t *testing.T, out string) []printedList {
	t.Helper()
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	var lists []printedList
	for {
		var doc map[string]any
		err := d.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return lists
		}
		if err != nil {
			t.Fatalf("decoding the output: %v\n%s", err, out)
		}
		if doc == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: doc}
		if u.GetKind() != "List" {
			lists = append(lists, printedList{items: []*unstructured.Unstructured{u}})
			continue
		}
		l := printedList{context: u.GetAnnotations()[ContextAnnotation]}
		items, _, _ := unstructured.NestedSlice(doc, "items")
		for _, i := range items {
			l.items = append(l.items, &unstructured.Unstructured{Object: i.(map[string]any)})
		}
		lists = append(lists, l)
	}
}

// checkPrinted fails on a printed object with a field the API server sets.
func checkPrinted(t *testing.T, items []*unstructured.Unstructured) {
	t.Helper()
	for _, u := range items {
		for _, f := range kube.ServerFields {
			if _, found, _ := unstructured.NestedFieldNoCopy(u.Object, f...); found {
				t.Errorf("printed %s %s has %s", u.GetKind(), u.GetName(), strings.Join(f, "."))
			}
		}
		if len(u.GetOwnerReferences()) > 0 {
			t.Errorf("printed %s %s has owner references", u.GetKind(), u.GetName())
		}
	}
}

// applyPrinted applies printed objects to c, as `kubectl apply -f` would.
func applyPrinted(t *testing.T, c *kubefake.Cluster, items []*unstructured.Unstructured) {
	t.Helper()
	for _, u := range items {
		if _, err := c.Clients().Apply(context.Background(), u, false); err != nil {
			t.Fatalf("applying the printed %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// sameObjects compares the objects of got and want but for the fields the server sets, and
// for those that except names (as Names does), which only want has.
func sameObjects(t *testing.T, what string, got, want *kubefake.Cluster, except ...string) {
	t.Helper()
	strip := func(c *kubefake.Cluster) map[string]map[string]any {
		m := map[string]map[string]any{}
		names := c.Names()
		for i, u := range c.Objects() {
			if !slices.Contains(except, names[i]) {
				m[names[i]] = kube.WithoutServerFields(u).Object
			}
		}
		return m
	}
	g, w := strip(got), strip(want)
	for name, obj := range w {
		if !reflect.DeepEqual(g[name], obj) {
			t.Errorf("%s: %s differs:\napplied from the dry run: %v\nwritten by the command:   %v", what, name, g[name], obj)
		}
	}
	for name := range g {
		if _, ok := w[name]; !ok {
			t.Errorf("%s: %s applied from the dry run, not written by the command", what, name)
		}
	}
}

// pair is a target cluster1 with kubectl-mcsa's namespace and a fresh source cluster2
// (namespace default, its service account default), with init run on the source.
func pair(init func(source *kubefake.Cluster)) (target, source *kubefake.Cluster) {
	target, source = kubefake.New("cluster1"), kubefake.New("cluster2")
	target.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.DefaultNamespace}})
	source.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "default"}})
	if init != nil {
		init(source)
	}
	return target, source
}

// runBootstrap runs bootstrap cluster1 cluster2 on the fakes, with --dry-run and -o.
func runBootstrap(t *testing.T, target, source *kubefake.Cluster, dryRun, output string) (string, string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewBootstrapOptions(streams, genericclioptions.NewConfigFlags(false))
	if dryRun != "" {
		o.DryRun = dryRun
	}
	o.Output = output
	o.connect = func(_, context string) (*kube.Clients, error) {
		switch context {
		case "cluster1":
			return target.Clients(), nil
		case "cluster2":
			return source.Clients(), nil
		}
		return nil, fmt.Errorf("no context %q", context)
	}
	err := completeAndRun(t, o, func() error { return o.Complete(nil, []string{"cluster1", "cluster2"}) })
	return out.String(), errOut.String(), err
}

func TestBootstrapDryRun(t *testing.T) {
	credentialSecret := "Secret/" + v1alpha1.DefaultNamespace + "/" + v1alpha1.SecretName("cluster2")
	withPolicy := func(source *kubefake.Cluster) {
		source.Add(grant.TokenPolicy([]string{"https://cluster2.audience"}))
	}
	for _, tt := range []struct {
		name           string
		init           func(*kubefake.Cluster)
		noDefault      bool // no service account default/default in the source
		dryRun, output string
		err, stderr    string
		audiences      string
	}{
		{name: "client, yaml", dryRun: "client", output: "yaml", stderr: "minted and discarded", audiences: `["https://cluster2"]`},
		{name: "client, json", dryRun: "client", output: "json", audiences: `["https://cluster2"]`},
		{name: "client, after an earlier bootstrap of the source", init: withPolicy, dryRun: "client", output: "yaml", audiences: `["https://cluster2"]`},
		{name: "client, audiences of the installed policy", init: withPolicy, noDefault: true, dryRun: "client", output: "yaml",
			stderr: "those its token policy holds", audiences: `["https://cluster2.audience"]`},
		{name: "client, no way to the audiences", noDefault: true, dryRun: "client", output: "yaml", err: "a dry run mints no credential"},
		{name: "server on a fresh source", dryRun: "server", output: "yaml", err: "a server dry run needs the namespaces it writes in to exist already"},
		{name: "server, namespaces there", init: func(s *kubefake.Cluster) {
			s.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: grant.Namespace}})
		}, dryRun: "server", output: "json", audiences: `["https://cluster2"]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			setup := func() (*kubefake.Cluster, *kubefake.Cluster) {
				target, source := kubefake.New("cluster1"), kubefake.New("cluster2")
				// kubectl mcsa install created the importer's namespace in the target.
				target.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.DefaultNamespace}})
				source.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
				if !tt.noDefault {
					source.Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "default"}})
				}
				if tt.init != nil {
					tt.init(source)
				}
				return target, source
			}
			target, source := setup()
			before := append(target.Names(), source.Names()...)
			out, errOut, err := runBootstrap(t, target, source, tt.dryRun, tt.output)
			if after := append(target.Names(), source.Names()...); !slices.Equal(after, before) {
				t.Errorf("a dry run wrote:\n%v\nthen\n%v", before, after)
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			if !strings.Contains(errOut, tt.stderr) || !strings.Contains(errOut, "(dry run) not written: the credential's Secret") || !strings.Contains(errOut, "(dry run) nothing was written") {
				t.Errorf("stderr:\n%s", errOut)
			}
			lists := decodePrinted(t, out)
			if len(lists) != 2 || lists[0].context != "cluster2" || lists[1].context != "cluster1" {
				t.Fatalf("want the source's List then the target's, got %d:\n%s", len(lists), out)
			}
			if tt.output == "yaml" && (!strings.HasPrefix(out, "# cluster: cluster2 (the source, cluster2)\n") || !strings.Contains(out, "\n---\n# cluster: cluster1 (the target, cluster1)\n")) {
				t.Errorf("the Lists are not labelled:\n%s", out)
			}
			for _, l := range lists {
				checkPrinted(t, l.items)
			}
			if !strings.Contains(out, tt.audiences) && !strings.Contains(out, strings.ReplaceAll(tt.audiences, `"`, `\"`)) {
				t.Errorf("the token policy does not have the audiences %s:\n%s", tt.audiences, out)
			}

			// Once applied, the clusters are as bootstrap leaves them, the credential's Secret aside.
			wantTarget, wantSource := setup()
			if _, errOut, err := runBootstrap(t, wantTarget, wantSource, "", ""); err != nil {
				t.Fatalf("bootstrap: %v\n%s", err, errOut)
			}
			if wantTarget.Object(corev1.SchemeGroupVersion.WithKind("Secret"), v1alpha1.DefaultNamespace, v1alpha1.SecretName("cluster2")) == nil {
				t.Fatal("bootstrap wrote no credential Secret")
			}
			if tt.init != nil && tt.noDefault {
				return // the installed policy's audiences are stale: bootstrap writes those of its token
			}
			applyPrinted(t, source, lists[0].items)
			applyPrinted(t, target, lists[1].items)
			sameObjects(t, "source", source, wantSource)
			sameObjects(t, "target", target, wantTarget, credentialSecret)
		})
	}
}

func TestBootstrapDryRunHuman(t *testing.T) {
	for _, tt := range []struct {
		dryRun, mark string
	}{
		{"client", " (dry run)"},
		{"server", " (server dry run)"},
	} {
		target, source := pair(func(s *kubefake.Cluster) {
			s.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: grant.Namespace}})
		})
		out, errOut, err := runBootstrap(t, target, source, tt.dryRun, "")
		if err != nil {
			t.Fatalf("%s: %v\n%s", tt.dryRun, err, errOut)
		}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasSuffix(l, tt.mark) {
				t.Errorf("%s: %q is not marked%s", tt.dryRun, l, tt.mark)
			}
		}
		if !strings.Contains(out, "serviceaccountimport.multicluster.admiralty.io/cluster2 created"+tt.mark) || strings.Contains(out, "secret/"+v1alpha1.SecretName("cluster2")) {
			t.Errorf("%s: stdout:\n%s", tt.dryRun, out)
		}
		if strings.Contains(errOut, "can import from") || strings.Contains(errOut, "Next:") {
			t.Errorf("%s: a dry run says it is done:\n%s", tt.dryRun, errOut)
		}
	}
}

// TestBootstrapOutput: -o without a dry run prints what was written, the credential's Secret
// aside; without flags, the output is as it was.
func TestBootstrapOutput(t *testing.T) {
	target, source := pair(nil)
	out, errOut, err := runBootstrap(t, target, source, "", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	lists := decodePrinted(t, out)
	if len(lists) != 2 || len(lists[0].items) < 8 || len(lists[1].items) != 2 {
		t.Errorf("-o yaml:\n%s", out)
	}
	for _, l := range lists {
		checkPrinted(t, l.items)
		for _, u := range l.items {
			if u.GetKind() == "Secret" && u.GetName() == v1alpha1.SecretName("cluster2") {
				t.Error("-o yaml printed the credential's Secret")
			}
		}
	}
	if !strings.Contains(errOut, "not printed: the credential's Secret") || !strings.Contains(errOut, "can import from") {
		t.Errorf("stderr:\n%s", errOut)
	}
	target, source = pair(nil)
	out, _, err = runBootstrap(t, target, source, "", "")
	if err != nil || !strings.Contains(out, "secret/"+v1alpha1.SecretName("cluster2")+" created\n") || strings.Contains(out, "dry run") {
		t.Errorf("without flags (%v):\n%s", err, out)
	}
	for _, bad := range [][2]string{{"maybe", ""}, {"", "wide"}} {
		if _, _, err := runBootstrap(t, target, source, bad[0], bad[1]); err == nil || !strings.Contains(err.Error(), "must be") {
			t.Errorf("--dry-run=%s -o %s: %v", bad[0], bad[1], err)
		}
	}
}

// runAllow runs allow on the fake with the grant's flags set by flags, --dry-run and -o.
func runAllow(t *testing.T, c *kubefake.Cluster, args []string, flags func(*AllowOptions), dryRun, output string) (string, string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewAllowOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect = func() (*kube.Clients, error) { return c.Clients(), nil }
	if dryRun != "" {
		o.DryRun = dryRun
	}
	o.Output = output
	if flags != nil {
		flags(o)
	}
	err := completeAndRun(t, o, func() error { return o.Complete(nil, args) })
	return out.String(), errOut.String(), err
}

func TestAllowDryRun(t *testing.T) {
	// A source with a grant already: of default/other to cluster1, and a token policy of cluster3.
	setup := func() *kubefake.Cluster {
		c := kubefake.New("cluster2")
		role, _ := grant.ImportRole("cluster1", "default", []string{"other"})
		policies := grant.Policies("default")
		policies.Data = map[string]string{grant.PolicyKey("cluster3", "pod-lister"): grant.PolicyValue("cluster3", "pod-lister", grant.DefaultPolicy())}
		c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "pod-lister", Namespace: "default",
				Annotations: map[string]string{v1alpha1.AllowedImportersAnnotation: "cluster3/x"}}},
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "default"}},
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "apps"}},
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "apps"}},
			role, grant.ImportRoleBinding("cluster1", "default"), grant.Anchor("cluster1", "default", "other"), policies)
		return c
	}
	for _, tt := range []struct {
		name           string
		args           []string
		flags          func(*AllowOptions)
		dryRun, output string
		kinds          []string
	}{
		{name: "named, client, yaml", args: []string{"cluster1", "default/pod-lister"}, dryRun: "client", output: "yaml",
			kinds: []string{"Role", "RoleBinding", "Secret", "Secret", "ConfigMap"}},
		{name: "into namespaces, client, json", args: []string{"cluster1", "default/pod-lister"}, dryRun: "client", output: "json",
			flags: func(o *AllowOptions) { o.Grant.IntoNamespaces = []string{"team-a"} },
			kinds: []string{"Role", "RoleBinding", "Secret", "Secret", "ConfigMap", "ServiceAccount"}},
		{name: "namespace-wide, server, yaml", args: []string{"cluster1"}, dryRun: "server", output: "yaml",
			flags: func(o *AllowOptions) { o.Grant.NamespaceWide = []string{"apps"} },
			kinds: []string{"Role", "RoleBinding", "Secret", "Secret", "ConfigMap"}},
		{name: "token policy, server, json", args: []string{"cluster1", "default/pod-lister"}, dryRun: "server", output: "json",
			flags: func(o *AllowOptions) {
				o.Grant.Policy = grant.Policy{MaxLifetime: time.Hour, Audiences: []string{"vault"}}
			},
			kinds: []string{"Role", "RoleBinding", "Secret", "Secret", "ConfigMap"}},
		{name: "federated, client, yaml", args: []string{"cluster1", "default/pod-lister"}, dryRun: "client", output: "yaml",
			flags: func(o *AllowOptions) { o.Grant.Federated, o.Grant.IntoNamespaces = true, []string{"team"} },
			kinds: []string{"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := setup()
			before := c.Objects()
			out, errOut, err := runAllow(t, c, tt.args, tt.flags, tt.dryRun, tt.output)
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			if after := c.Objects(); !reflect.DeepEqual(after, before) {
				t.Errorf("a dry run wrote: %v", c.Names())
			}
			if !strings.Contains(errOut, "(dry run) nothing was written") {
				t.Errorf("stderr:\n%s", errOut)
			}
			lists := decodePrinted(t, out)
			if len(lists) != 1 {
				t.Fatalf("want one List:\n%s", out)
			}
			var kinds []string
			for _, u := range lists[0].items {
				kinds = append(kinds, u.GetKind())
			}
			if !slices.Equal(kinds, tt.kinds) {
				t.Errorf("printed %v, want %v:\n%s", kinds, tt.kinds, out)
			}
			checkPrinted(t, lists[0].items)

			want := setup()
			if _, errOut, err := runAllow(t, want, tt.args, tt.flags, "", ""); err != nil {
				t.Fatalf("allow: %v\n%s", err, errOut)
			}
			applyPrinted(t, c, lists[0].items)
			sameObjects(t, "source", c, want)
		})
	}
}

func TestAllowDryRunHuman(t *testing.T) {
	for _, tt := range []struct {
		dryRun, mark string
	}{
		{"client", " (dry run)"},
		{"server", " (server dry run)"},
	} {
		c, _ := fakeCluster("cluster2")
		c.Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "pod-lister", Namespace: "default"}})
		out, errOut, err := runAllow(t, c, []string{"cluster1", "default/pod-lister"}, func(o *AllowOptions) { o.Grant.IntoNamespaces = []string{"team-a"} }, tt.dryRun, "")
		if err != nil {
			t.Fatal(err)
		}
		name := grant.ImportName("cluster1")
		want := "role.rbac.authorization.k8s.io/" + name + " created" + tt.mark + "\nrolebinding.rbac.authorization.k8s.io/" + name + " created" + tt.mark + "\n" +
			"secret/" + grant.AnchorName("cluster1", "pod-lister") + " created" + tt.mark + "\nconfigmap/" + grant.PoliciesName + " created" + tt.mark + "\n" +
			"serviceaccount/pod-lister configured" + tt.mark + "\n"
		if out != want || strings.Contains(errOut, "Next") {
			t.Errorf("%s: stdout:\n%s\nwant\n%s\nstderr: %s", tt.dryRun, out, want, errOut)
		}
		if len(c.Names()) != 2 {
			t.Errorf("%s: a dry run wrote %v", tt.dryRun, c.Names())
		}
	}
	// -o without a dry run: what was written.
	c, _ := fakeCluster("cluster2")
	out, _, err := runAllow(t, c, []string{"cluster1", "default/pod-lister"}, nil, "", "json")
	if lists := decodePrinted(t, out); err != nil || len(lists) != 1 || len(lists[0].items) != 4 || len(c.Names()) != 5 {
		t.Errorf("-o json (%v): %v\n%s", err, c.Names(), out)
	}
}

// runImport runs import cluster2/default/pod-lister on the fake.
func runImport(t *testing.T, c *kubefake.Cluster, dryRun, output string, wait bool) (string, string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewImportOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect = func() (*kube.Clients, error) { return c.Clients(), nil }
	if dryRun != "" {
		o.DryRun = dryRun
	}
	o.Wait = wait
	o.printFlags.OutputFormat = &output
	o.printFlags.OutputFlagSpecified = func() bool { return output != "" }
	err := completeAndRun(t, o, func() error { return o.Complete(nil, []string{"cluster2/default/pod-lister"}) })
	return out.String(), errOut.String(), err
}

func TestImportDryRun(t *testing.T) {
	const name = "cluster2-default-pod-lister"
	for _, tt := range []struct {
		name, dryRun, output string
		existing             bool
		want                 string
	}{
		{name: "client, name", dryRun: "client", output: "", want: "serviceaccountimport.multicluster.admiralty.io/" + name + " created (dry run)\n"},
		{name: "server, name", dryRun: "server", output: "", want: "serviceaccountimport.multicluster.admiralty.io/" + name + " created (server dry run)\n"},
		{name: "client, unchanged", dryRun: "client", output: "", existing: true, want: "serviceaccountimport.multicluster.admiralty.io/" + name + " unchanged (dry run)\n"},
		{name: "client, yaml", dryRun: "client", output: "yaml"},
		{name: "server, json", dryRun: "server", output: "json"},
		{name: "client, yaml, existing", dryRun: "client", output: "yaml", existing: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := fakeCluster("cluster1")
			if tt.existing {
				if _, _, err := runImport(t, c, "", "", false); err != nil {
					t.Fatal(err)
				}
			}
			before := c.Objects()
			out, errOut, err := runImport(t, c, tt.dryRun, tt.output, false)
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			if !reflect.DeepEqual(c.Objects(), before) {
				t.Errorf("a dry run wrote: %v", c.Names())
			}
			if tt.want != "" {
				if out != tt.want || strings.Contains(errOut, "Pods in namespace") {
					t.Errorf("stdout %q, want %q; stderr %q", out, tt.want, errOut)
				}
				return
			}
			lists := decodePrinted(t, out)
			if len(lists) != 1 || len(lists[0].items) != 1 || lists[0].items[0].GetKind() != "ServiceAccountImport" || lists[0].items[0].GetNamespace() != "default" {
				t.Fatalf("-o %s:\n%s", tt.output, out)
			}
			checkPrinted(t, lists[0].items)
			want, _ := fakeCluster("cluster1")
			if _, _, err := runImport(t, want, "", "", false); err != nil {
				t.Fatal(err)
			}
			applyPrinted(t, c, lists[0].items)
			sameObjects(t, "cluster1", c, want)
		})
	}
	c, _ := fakeCluster("cluster1")
	if _, _, err := runImport(t, c, "client", "", true); err == nil || !strings.Contains(err.Error(), "--wait") {
		t.Errorf("--dry-run --wait: %v", err)
	}
	if _, _, err := runImport(t, c, "maybe", "", false); err == nil || !strings.Contains(err.Error(), "--dry-run must be") {
		t.Errorf("--dry-run=maybe: %v", err)
	}
}

// TestDryRunFlags: every --dry-run is kubectl's: none, client or server, bare --dry-run is
// client; the values documented before still parse.
func TestDryRunFlags(t *testing.T) {
	root := NewRootCmd(genericiooptions.NewTestIOStreamsDiscard())
	for _, name := range []string{"install", "uninstall", "bootstrap", "federate", "allow", "import", "disconnect", "unfederate"} {
		cmd, _, err := root.Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		f := cmd.Flags().Lookup("dry-run")
		if f == nil || f.Value.Type() != "string" || f.NoOptDefVal != "client" || f.DefValue != "none" {
			t.Errorf("%s --dry-run: %+v", name, f)
		}
	}
}

func TestUninstallDisconnectClientDryRun(t *testing.T) {
	c, connect := fakeCluster("cluster1")
	c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: grant.Namespace}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "mcsa-importer"}})
	before := c.Names()
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	o := NewUninstallOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect, o.DryRun = connect, "client"
	if err := completeAndRun(t, o, func() error { return o.Complete(nil, nil) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Names(), before) || !strings.Contains(out.String(), "clusterrole.rbac.authorization.k8s.io/mcsa-importer deleted (dry run)\n") ||
		!strings.Contains(out.String(), " not found (dry run)\n") {
		t.Errorf("uninstall --dry-run=client: %v\n%s", c.Names(), out.String())
	}

	target, source := pair(nil)
	if _, _, err := runBootstrap(t, target, source, "", ""); err != nil {
		t.Fatal(err)
	}
	before = append(target.Names(), source.Names()...)
	source.Kube.ClearActions()
	source.Dynamic.ClearActions()
	streams, _, out, _ = genericiooptions.NewTestIOStreams()
	d := NewDisconnectOptions(streams, genericclioptions.NewConfigFlags(false))
	d.DryRun = "client"
	d.connect = func(_, context string) (*kube.Clients, error) {
		if context == "cluster1" {
			return target.Clients(), nil
		}
		return source.Clients(), nil
	}
	if err := completeAndRun(t, d, func() error { return d.Complete(nil, []string{"cluster1", "cluster2"}) }); err != nil {
		t.Fatal(err)
	}
	if after := append(target.Names(), source.Names()...); !slices.Equal(after, before) {
		t.Errorf("disconnect --dry-run=client deleted: %v", after)
	}
	if !strings.Contains(out.String(), "serviceaccountimport.multicluster.admiralty.io/cluster2 deleted (dry run)\n") ||
		!strings.Contains(out.String(), "serviceaccount/cluster1 deleted (dry run)\n") {
		t.Errorf("disconnect --dry-run=client:\n%s", out.String())
	}
	for _, a := range append(source.Kube.Actions(), source.Dynamic.Actions()...) {
		if v := a.GetVerb(); v == "delete" || v == "patch" {
			t.Errorf("disconnect --dry-run=client sent a %s of %s", v, a.GetResource().Resource)
		}
	}
}
