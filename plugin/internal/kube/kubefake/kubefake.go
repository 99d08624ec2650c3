// Package kubefake is an in-memory cluster for the engines' unit tests: client-go's fake typed
// and dynamic clients, wired to one store so that what one writes the other reads, as with a
// real API server. client-go's own object tracker cannot stand in alone: it keeps typed and
// unstructured objects apart, its server-side apply fails on objects that do not exist yet, and
// it never changes resourceVersion, which is how the plugin tells "configured" from "unchanged".
//
// The store emulates what the plugin relies on and nothing more: objects are kept in the form
// the API server stores them (decoded into their Go types and encoded back), server-side apply
// creates or replaces the applier's fields (as for the sole field manager of an object), namespaced
// objects need their namespace, resourceVersion and generation move only on a real change, dry
// runs store nothing, merge patches honour a resourceVersion precondition, TokenRequest mints a
// new token for an existing service account each time, and CRDs are established at once.
package kubefake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// CRDKind is the kind of CustomResourceDefinitions, which the typed scheme does not know: the
// store keeps them unstructured.
var CRDKind = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// rootScoped are the cluster-scoped kinds the plugin touches.
var rootScoped = map[schema.GroupKind]bool{
	{Kind: "Namespace"}: true,
	{Kind: "Node"}:      true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:                       true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:                true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:   true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}: true,
	CRDKind.GroupKind(): true,
}

// Cluster is one fake cluster.
type Cluster struct {
	// Name is the context's and the kubeconfig cluster's name.
	Name string
	// Kube and Dynamic are client-go's fakes, reading and writing the store; their Actions()
	// record the calls.
	Kube    *k8sfake.Clientset
	Dynamic *dynamicfake.FakeDynamicClient
	// ServerURL, if set, is the API URL the kubeconfig gives (a loopback one, say).
	ServerURL string
	// Now is the server's clock, for token expirations.
	Now func() time.Time

	scheme   *runtime.Scheme
	mapper   *meta.DefaultRESTMapper
	mu       sync.Mutex
	objects  map[schema.GroupVersionResource]map[types.NamespacedName]*unstructured.Unstructured
	version  int64
	tokens   int
	unserved map[schema.GroupVersionResource]bool
}

// ServerVersion is the Kubernetes version fake clusters report.
const ServerVersion = "v1.37.2"

// New is an empty cluster named name (no namespace exists, not even "default").
func New(name string) *Cluster {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	c := &Cluster{
		Name:     name,
		Now:      time.Now,
		scheme:   s,
		mapper:   newMapper(s, schema.GroupKind{}),
		objects:  map[schema.GroupVersionResource]map[types.NamespacedName]*unstructured.Unstructured{},
		unserved: map[schema.GroupVersionResource]bool{},
	}
	c.Kube = k8sfake.NewClientset()
	// A current server: client-go's fake otherwise reports v0.0.0-master.
	c.Kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: ServerVersion, Major: "1", Minor: "37"}
	c.Kube.PrependReactor("*", "*", c.react(true))
	// The dynamic fake needs to know list kinds up front; its scheme is its own, as it adds
	// to it.
	listKinds := map[schema.GroupVersionResource]string{}
	for _, gvk := range append(resourceKinds(s), CRDKind) {
		m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			panic(err)
		}
		listKinds[m.Resource] = gvk.Kind + "List"
	}
	c.Dynamic = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds)
	c.Dynamic.PrependReactor("*", "*", c.react(false))
	return c
}

// resourceKinds are the kinds of the scheme that are resources: those with a list kind.
func resourceKinds(s *runtime.Scheme) []schema.GroupVersionKind {
	var kinds []schema.GroupVersionKind
	for gvk := range s.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal || strings.HasSuffix(gvk.Kind, "List") || !s.Recognizes(gvk.GroupVersion().WithKind(gvk.Kind+"List")) {
			continue
		}
		kinds = append(kinds, gvk)
	}
	return kinds
}

// newMapper maps the scheme's resources and CRDs, except the kind left out.
func newMapper(s *runtime.Scheme, except schema.GroupKind) *meta.DefaultRESTMapper {
	mapper := meta.NewDefaultRESTMapper(s.PrioritizedVersionsAllGroups())
	for _, gvk := range append(resourceKinds(s), CRDKind) {
		if gvk.GroupKind() == except {
			continue
		}
		scope := meta.RESTScopeNamespace
		if rootScoped[gvk.GroupKind()] {
			scope = meta.RESTScopeRoot
		}
		mapper.Add(gvk, scope)
	}
	return mapper
}

// Clients are the plugin's clients of the cluster, as kube.New builds them from a kubeconfig
// context named after it.
func (c *Cluster) Clients() *kube.Clients {
	raw := clientcmdapi.NewConfig()
	raw.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.Server()}
	raw.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: c.Name}
	raw.CurrentContext = c.Name
	return &kube.Clients{
		Context:   c.Name,
		Namespace: "default",
		Config:    &rest.Config{Host: c.Server(), TLSClientConfig: rest.TLSClientConfig{CAData: c.CA()}},
		Kube:      c.Kube,
		Dynamic:   c.Dynamic,
		Mapper:    c.mapper,
		Raw:       *raw,
	}
}

// Server is the cluster's API URL: ServerURL, else https://NAME.example:6443.
func (c *Cluster) Server() string {
	if c.ServerURL != "" {
		return c.ServerURL
	}
	return "https://" + c.Name + ".example:6443"
}

// CA is the cluster's CA bundle as its kubeconfig gives it.
func (c *Cluster) CA() []byte { return []byte("CA of " + c.Name) }

// Unserve makes the API server not serve a resource, as when its CRD is not installed: calls
// on it fail with the NotFound of a missing resource type, and the mapper does not know it.
func (c *Cluster) Unserve(gvr schema.GroupVersionResource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unserved[gvr] = true
	kind, err := c.mapper.KindFor(gvr)
	if err != nil {
		return
	}
	// DefaultRESTMapper cannot remove a kind: rebuild it without this one, in place, as the
	// clients handed out share it.
	*c.mapper = *newMapper(c.scheme, kind.GroupKind())
}

// Add stores objects (typed with or without TypeMeta, or unstructured) as they are, with a
// resourceVersion, a UID and generation 1; it panics on objects it cannot store.
func (c *Cluster) Add(objs ...runtime.Object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, obj := range objs {
		gvr, u, err := c.fromObject(obj)
		if err != nil {
			panic(err)
		}
		c.stamp(u, nil)
		c.put(gvr, u)
	}
}

// Names lists the stored objects as "kind.group/namespace/name" (or "kind.group/name" for
// cluster-scoped ones), sorted: what a test expects a command to have created.
func (c *Cluster) Names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for _, objs := range c.objects {
		for key, u := range objs {
			gk := u.GroupVersionKind().GroupKind()
			kind := gk.Kind
			if gk.Group != "" {
				kind += "." + gk.Group
			}
			if key.Namespace != "" {
				names = append(names, kind+"/"+key.Namespace+"/"+key.Name)
			} else {
				names = append(names, kind+"/"+key.Name)
			}
		}
	}
	sort.Strings(names)
	return names
}

// Objects are copies of the stored objects, in the order of Names.
func (c *Cluster) Objects() []*unstructured.Unstructured {
	c.mu.Lock()
	defer c.mu.Unlock()
	var objs []*unstructured.Unstructured
	for _, m := range c.objects {
		for _, u := range m {
			objs = append(objs, u.DeepCopy())
		}
	}
	key := func(u *unstructured.Unstructured) string {
		gk := u.GroupVersionKind().GroupKind()
		return gk.Kind + "." + gk.Group + "/" + u.GetNamespace() + "/" + u.GetName()
	}
	sort.Slice(objs, func(i, j int) bool { return key(objs[i]) < key(objs[j]) })
	return objs
}

// Object is a stored object (a copy), nil if there is none.
func (c *Cluster) Object(gvk schema.GroupVersionKind, namespace, name string) *unstructured.Unstructured {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil
	}
	if u := c.objects[m.Resource][types.NamespacedName{Namespace: namespace, Name: name}]; u != nil {
		return u.DeepCopy()
	}
	return nil
}

// react serves a fake client's actions from the store; typed answers with typed objects.
func (c *Cluster) react(typed bool) k8stesting.ReactionFunc {
	return func(action k8stesting.Action) (bool, runtime.Object, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		gvr := action.GetResource()
		gr := gvr.GroupResource()
		if c.unserved[gvr] {
			// What the API server answers for a resource type it does not serve.
			return true, nil, apierrors.NewNotFound(gr, "")
		}
		ns := action.GetNamespace()
		out := func(u *unstructured.Unstructured, err error) (bool, runtime.Object, error) {
			if err != nil {
				return true, nil, err
			}
			obj, err := c.toObject(u, typed)
			return true, obj, err
		}
		switch a := action.(type) {
		case k8stesting.GetActionImpl:
			if a.Subresource != "" {
				return false, nil, nil
			}
			return out(c.get(gvr, ns, a.Name))
		case k8stesting.ListActionImpl:
			return c.list(gvr, ns, typed)
		case k8stesting.CreateActionImpl:
			if a.Subresource == "token" && gvr.Resource == "serviceaccounts" {
				return c.token(ns, a.Name, a.Object)
			}
			if a.Subresource != "" {
				return false, nil, nil
			}
			return out(c.create(gvr, ns, a.Object, dryRun(a.CreateOptions.DryRun)))
		case k8stesting.UpdateActionImpl:
			if a.Subresource != "" {
				return false, nil, nil
			}
			return out(c.update(gvr, ns, a.Object))
		case k8stesting.PatchActionImpl:
			if a.Subresource != "" {
				return false, nil, nil
			}
			return out(c.patch(gvr, ns, a))
		case k8stesting.DeleteActionImpl:
			if a.Subresource != "" {
				return false, nil, nil
			}
			return out(c.delete(gvr, ns, a.Name, dryRun(a.DeleteOptions.DryRun)))
		}
		return false, nil, nil
	}
}

func dryRun(opts []string) bool { return len(opts) > 0 }

func (c *Cluster) get(gvr schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	if u := c.objects[gvr][types.NamespacedName{Namespace: ns, Name: name}]; u != nil {
		return u.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(gvr.GroupResource(), name)
}

func (c *Cluster) list(gvr schema.GroupVersionResource, ns string, typed bool) (bool, runtime.Object, error) {
	gvk, err := c.mapper.KindFor(gvr)
	if err != nil {
		return true, nil, err
	}
	var items []*unstructured.Unstructured
	for key, u := range c.objects[gvr] {
		if ns == "" || key.Namespace == ns {
			items = append(items, u.DeepCopy())
		}
	}
	sort.Slice(items, func(i, j int) bool {
		return items[i].GetNamespace()+"/"+items[i].GetName() < items[j].GetNamespace()+"/"+items[j].GetName()
	})
	listGVK := gvk.GroupVersion().WithKind(gvk.Kind + "List")
	if typed {
		list, err := c.scheme.New(listGVK)
		if err != nil {
			return true, nil, err
		}
		objs := make([]runtime.Object, 0, len(items))
		for _, u := range items {
			obj, err := c.toObject(u, true)
			if err != nil {
				return true, nil, err
			}
			objs = append(objs, obj)
		}
		return true, list, meta.SetList(list, objs)
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(listGVK)
	for _, u := range items {
		list.Items = append(list.Items, *u)
	}
	return true, list, nil
}

func (c *Cluster) create(gvr schema.GroupVersionResource, ns string, obj runtime.Object, dryRun bool) (*unstructured.Unstructured, error) {
	_, u, err := c.fromObject(obj)
	if err != nil {
		return nil, err
	}
	if ns != "" {
		u.SetNamespace(ns)
	}
	if _, err := c.get(gvr, u.GetNamespace(), u.GetName()); err == nil {
		return nil, apierrors.NewAlreadyExists(gvr.GroupResource(), u.GetName())
	}
	if err := c.namespaceExists(u.GetNamespace()); err != nil {
		return nil, err
	}
	c.stamp(u, nil)
	if !dryRun {
		c.put(gvr, u)
	}
	return u.DeepCopy(), nil
}

func (c *Cluster) update(gvr schema.GroupVersionResource, ns string, obj runtime.Object) (*unstructured.Unstructured, error) {
	_, u, err := c.fromObject(obj)
	if err != nil {
		return nil, err
	}
	existing, err := c.get(gvr, ns, u.GetName())
	if err != nil {
		return nil, err
	}
	if rv := u.GetResourceVersion(); rv != "" && rv != existing.GetResourceVersion() {
		return nil, apierrors.NewConflict(gvr.GroupResource(), u.GetName(), fmt.Errorf("the object has been modified"))
	}
	c.stamp(u, existing)
	c.put(gvr, u)
	return u.DeepCopy(), nil
}

// patch applies a server-side apply (creating the object when missing) or a JSON merge patch.
func (c *Cluster) patch(gvr schema.GroupVersionResource, ns string, a k8stesting.PatchActionImpl) (*unstructured.Unstructured, error) {
	var patch map[string]any
	// apimachinery's decoder keeps integers int64, as in objects converted from typed ones, so
	// that an unchanged number compares equal.
	if err := utiljson.Unmarshal(a.Patch, &patch); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	dry := dryRun(a.PatchOptions.DryRun)
	existing, err := c.get(gvr, ns, a.Name)
	switch a.PatchType {
	case types.ApplyPatchType:
		if apierrors.IsNotFound(err) {
			u := &unstructured.Unstructured{Object: patch}
			if gvk, err := c.mapper.KindFor(gvr); err == nil && u.GetKind() == "" {
				u.SetGroupVersionKind(gvk)
			}
			if u, err = c.canonical(u); err != nil {
				return nil, err
			}
			u.SetName(a.Name)
			if err := c.namespaceExists(ns); err != nil {
				return nil, err
			}
			if ns != "" {
				u.SetNamespace(ns)
			}
			c.stamp(u, nil)
			if !dry {
				c.put(gvr, u)
			}
			return u.DeepCopy(), nil
		}
	case types.MergePatchType:
		if err == nil {
			if rv, ok, _ := unstructured.NestedString(patch, "metadata", "resourceVersion"); ok && rv != existing.GetResourceVersion() {
				return nil, apierrors.NewConflict(gvr.GroupResource(), a.Name, fmt.Errorf("the object has been modified"))
			}
		}
	default:
		return nil, apierrors.NewBadRequest("kubefake: unsupported patch type " + string(a.PatchType))
	}
	if err != nil {
		return nil, err
	}
	var merged *unstructured.Unstructured
	if a.PatchType == types.ApplyPatchType {
		merged = applied(existing, patch)
	} else {
		merged = &unstructured.Unstructured{Object: mergePatch(existing.DeepCopy().Object, patch).(map[string]any)}
	}
	if merged, err = c.canonical(merged); err != nil {
		return nil, err
	}
	merged.SetResourceVersion(existing.GetResourceVersion())
	if reflect.DeepEqual(merged.Object, existing.Object) {
		return existing, nil
	}
	c.stamp(merged, existing)
	if !dry {
		c.put(gvr, merged)
	}
	return merged.DeepCopy(), nil
}

// namespaceExists is the API server's check before it creates a namespaced object.
func (c *Cluster) namespaceExists(ns string) error {
	namespaces := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	if ns == "" {
		return nil
	}
	if _, err := c.get(namespaces, "", ns); err != nil {
		return apierrors.NewNotFound(namespaces.GroupResource(), ns)
	}
	return nil
}

// applied is what server-side apply makes of existing when the applier is the only manager of
// everything but metadata and status, as the plugin is of what it applies: its fields replace
// the object's, labels and annotations merge with others', and the status stays. (A real API
// server would also keep fields of other managers inside the applier's, e.g. a CA bundle a
// controller injected into a webhook configuration; tests must not rely on that.)
func applied(existing *unstructured.Unstructured, patch map[string]any) *unstructured.Unstructured {
	out := map[string]any{}
	for k, v := range patch {
		if k != "metadata" && k != "status" {
			out[k] = runtime.DeepCopyJSONValue(v)
		}
	}
	// Nulls in an applied configuration mean "not set", not "remove" (a typed object's zero
	// creation time marshals to one).
	meta, _ := dropNulls(runtime.DeepCopyJSONValue(patch["metadata"])).(map[string]any)
	out["metadata"] = mergePatch(runtime.DeepCopyJSONValue(existing.Object["metadata"]), meta)
	if status, ok := existing.Object["status"]; ok {
		out["status"] = runtime.DeepCopyJSONValue(status)
	}
	return &unstructured.Unstructured{Object: out}
}

// canonical is the object as the API server stores it: decoded into its Go type and encoded
// back (for the kinds the scheme knows), so that the same object sent typed or as YAML, with or
// without zero values, compares equal.
func (c *Cluster) canonical(u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	gvk := u.GroupVersionKind()
	typed, err := c.scheme.New(gvk)
	if err != nil {
		return u, nil
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, typed); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typed)
	if err != nil {
		return nil, err
	}
	out := &unstructured.Unstructured{Object: m}
	out.SetGroupVersionKind(gvk)
	// A zero creation time encodes as null; the server sets it.
	if ts, ok, _ := unstructured.NestedFieldNoCopy(out.Object, "metadata", "creationTimestamp"); ok && ts == nil {
		unstructured.RemoveNestedField(out.Object, "metadata", "creationTimestamp")
	}
	return out, nil
}

// dropNulls removes null values, which in an applied configuration mean "not set".
func dropNulls(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e == nil {
				delete(v, k)
			} else {
				v[k] = dropNulls(e)
			}
		}
	case []any:
		for i, e := range v {
			v[i] = dropNulls(e)
		}
	}
	return v
}

// mergePatch is RFC 7386: objects merge, null removes, anything else replaces.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}

func (c *Cluster) delete(gvr schema.GroupVersionResource, ns, name string, dryRun bool) (*unstructured.Unstructured, error) {
	u, err := c.get(gvr, ns, name)
	if err != nil {
		return nil, err
	}
	if !dryRun {
		delete(c.objects[gvr], types.NamespacedName{Namespace: ns, Name: name})
	}
	return u, nil
}

// token answers a TokenRequest for an existing service account with a new token each time.
func (c *Cluster) token(ns, name string, obj runtime.Object) (bool, runtime.Object, error) {
	sas := schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	if _, err := c.get(sas, ns, name); err != nil {
		return true, nil, err
	}
	tr, ok := obj.(*authenticationv1.TokenRequest)
	if !ok {
		return true, nil, apierrors.NewBadRequest("kubefake: not a TokenRequest")
	}
	if ref := tr.Spec.BoundObjectRef; ref != nil && ref.Kind == "Secret" {
		// As the API server: the bound object must exist.
		if _, err := c.get(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, ns, ref.Name); err != nil {
			return true, nil, err
		}
	}
	tr = tr.DeepCopy()
	seconds := int64(3600)
	if tr.Spec.ExpirationSeconds != nil {
		seconds = *tr.Spec.ExpirationSeconds
	}
	c.tokens++
	exp := c.Now().Add(time.Duration(seconds) * time.Second).Truncate(time.Second)
	tr.Status.Token = c.jwt(ns, name, tr.Spec.Audiences, exp)
	tr.Status.ExpirationTimestamp = metav1.NewTime(exp)
	return true, tr, nil
}

// jwt is an unsigned JWT with the claims the API server would set (its audiences defaulting to
// the cluster's issuer, https://NAME), whose third part, in place of a signature, says which token
// it is: TokenID.
func (c *Cluster) jwt(ns, name string, audiences []string, exp time.Time) string {
	if len(audiences) == 0 {
		audiences = []string{"https://" + c.Name}
	}
	claims, _ := json.Marshal(map[string]any{ // plain values: cannot fail
		"iss": "https://" + c.Name, "sub": "system:serviceaccount:" + ns + ":" + name, "aud": audiences,
		"exp": exp.Unix(), "iat": c.Now().Unix(),
	})
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc(claims) + "." + TokenID(c.tokens, ns, name, c.Name)
}

// TokenID is what tells the n-th token the fake cluster named cluster minted, for service
// account ns/name, from the others: the end of that token.
func TokenID(n int, ns, name, cluster string) string {
	return fmt.Sprintf("token-%d-of-%s/%s@%s", n, ns, name, cluster)
}

// stamp sets what the API server owns: resourceVersion, and on creation UID, creation time and
// generation 1; on a change of anything but metadata and status, the next generation.
func (c *Cluster) stamp(u, existing *unstructured.Unstructured) {
	c.version++
	u.SetResourceVersion(strconv.FormatInt(c.version, 10))
	if existing == nil {
		if u.GetUID() == "" {
			u.SetUID(types.UID(fmt.Sprintf("uid-%d", c.version)))
		}
		if ts := u.GetCreationTimestamp(); ts.IsZero() {
			u.SetCreationTimestamp(metav1.NewTime(c.Now().Truncate(time.Second)))
		}
		if u.GetGeneration() == 0 {
			u.SetGeneration(1)
		}
		if u.GroupVersionKind() == CRDKind {
			// The apiextensions server establishes a valid CRD within moments.
			_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"type": "Established", "status": "True"}}, "status", "conditions")
		}
		return
	}
	u.SetUID(existing.GetUID())
	u.SetCreationTimestamp(existing.GetCreationTimestamp())
	u.SetGeneration(existing.GetGeneration())
	if !reflect.DeepEqual(withoutMetaAndStatus(u), withoutMetaAndStatus(existing)) {
		u.SetGeneration(existing.GetGeneration() + 1)
	}
}

func withoutMetaAndStatus(u *unstructured.Unstructured) map[string]any {
	m := map[string]any{}
	for k, v := range u.Object {
		if k != "metadata" && k != "status" {
			m[k] = v
		}
	}
	return m
}

func (c *Cluster) put(gvr schema.GroupVersionResource, u *unstructured.Unstructured) {
	if c.objects[gvr] == nil {
		c.objects[gvr] = map[types.NamespacedName]*unstructured.Unstructured{}
	}
	c.objects[gvr][types.NamespacedName{Namespace: u.GetNamespace(), Name: u.GetName()}] = u.DeepCopy()
}

// fromObject converts an object to the stored form and finds its resource.
func (c *Cluster) fromObject(obj runtime.Object) (schema.GroupVersionResource, *unstructured.Unstructured, error) {
	var u *unstructured.Unstructured
	if in, ok := obj.(*unstructured.Unstructured); ok {
		u = in.DeepCopy()
	} else {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return schema.GroupVersionResource{}, nil, err
		}
		u = &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" {
			// Typed clients send objects without TypeMeta.
			gvks, _, err := c.scheme.ObjectKinds(obj)
			if err != nil {
				return schema.GroupVersionResource{}, nil, err
			}
			u.SetGroupVersionKind(gvks[0])
		}
	}
	u, err := c.canonical(u)
	if err != nil {
		return schema.GroupVersionResource{}, nil, err
	}
	gvk := u.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return schema.GroupVersionResource{}, nil, err
	}
	return m.Resource, u, nil
}

// toObject converts a stored object for a client: typed when the typed client asks and the
// scheme knows the kind.
func (c *Cluster) toObject(u *unstructured.Unstructured, typed bool) (runtime.Object, error) {
	if !typed {
		return u, nil
	}
	obj, err := c.scheme.New(u.GroupVersionKind())
	if err != nil {
		return u, nil
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return nil, err
	}
	return obj, nil
}
