package diagnose

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/inspect"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// crdFile is the embedded CRD, which controller-gen names after the group and resource.
const crdFile = "crd/" + v1alpha1.GroupName + "_" + v1alpha1.ResourcePlural + ".yaml"

// Check is one line of doctor's answer.
type Check struct {
	Context string `json:"context,omitempty"`
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Message string `json:"message"`
	Remedy  string `json:"remedy,omitempty"`
}

// Doctor checks one cluster: the installation, its cluster credentials and its imports.
func Doctor(ctx context.Context, cl *kube.Clients, now time.Time) []Check {
	return (&doctor{cl: cl, now: now, remote: newRemote, anonymousGet: anonymousGet}).run(ctx)
}

type doctor struct {
	cl  *kube.Clients
	now time.Time
	// remote is a client of a remote cluster, acting with a cluster credential's token.
	remote func(*rest.Config) (kubernetes.Interface, error)
	// anonymousGet GETs path of the API server of cfg without credentials, as a remote cluster
	// fetching this one's issuer discovery does, and returns the HTTP status.
	anonymousGet func(ctx context.Context, cfg *rest.Config, path string) (url string, status int, err error)
	checks       []Check
}

func newRemote(cfg *rest.Config) (kubernetes.Interface, error) { return kubernetes.NewForConfig(cfg) }

// anonymousGet is doctor's anonymousGet: the kubeconfig's server, CA and proxy, no credentials.
func anonymousGet(ctx context.Context, cfg *rest.Config, path string) (string, int, error) {
	anon := rest.AnonymousClientConfig(cfg)
	anon.Timeout = 10 * time.Second
	u, _, err := rest.DefaultServerUrlFor(anon)
	if err != nil {
		return "", 0, err
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	hc, err := rest.HTTPClientFor(anon)
	if err != nil {
		return u.String(), 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return u.String(), 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return u.String(), 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return u.String(), resp.StatusCode, nil
}

func (d *doctor) run(ctx context.Context) []Check {
	d.anchors(ctx) // as a cluster imported from, which needs no installation
	if !d.crd(ctx) {
		return d.checks
	}
	d.controller(ctx)
	d.webhook(ctx)
	d.credentials(ctx)
	d.imports(ctx)
	return d.checks
}

func (d *doctor) add(name string, ok bool, message, remedy string) {
	d.checks = append(d.checks, Check{Context: d.cl.Context, Name: name, OK: ok, Message: message, Remedy: remedy})
}

func (d *doctor) install() string { return "kubectl mcsa install" + d.cl.ContextFlag() }

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// crd checks that the API is installed and matches this plugin's; without it, nothing else
// applies, except saying whether the cluster is a source others import from.
func (d *doctor) crd(ctx context.Context) bool {
	live, err := d.cl.Dynamic.Resource(crdResource).Get(ctx, manifests.CRD, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if sources := d.importers(ctx); len(sources) > 0 {
			d.add("role", true, fmt.Sprintf("source only: %s may import from this cluster (no importer installed here)", strings.Join(sources, ", ")), "")
			return false
		}
		d.add("crd", false, "the ServiceAccountImport API is not installed", d.install())
		return false
	}
	if err != nil {
		d.add("crd", false, d.cl.APIError(err).Error(), "")
		return false
	}
	b, err := manifests.FS.ReadFile(crdFile)
	if err != nil {
		d.add("crd", false, err.Error(), "")
		return false
	}
	var shipped map[string]any
	if err := yaml.Unmarshal(b, &shipped); err != nil {
		d.add("crd", false, err.Error(), "")
		return false
	}
	want, _, _ := unstructured.NestedSlice(shipped, "spec", "versions")
	got, _, _ := unstructured.NestedSlice(live.Object, "spec", "versions")
	if !reflect.DeepEqual(normalize(want), normalize(got)) {
		d.add("crd", false, "the ServiceAccountImport API differs from this plugin's version", d.install())
		return true
	}
	d.add("crd", true, "the ServiceAccountImport API is installed and current", "")
	return true
}

// normalize makes YAML-decoded and API-returned values comparable (numbers, defaults).
func normalize(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// anchors checks, when this cluster grants imports to others and the operator may read its
// grants and secrets, that every granted service account has its anchor (grant.Anchor): without
// one the importer gets no token (GrantAnchorMissing), and a grant written before anchors existed
// cannot be revoked at once. It checks nothing it cannot read.
func (d *doctor) anchors(ctx context.Context) {
	selector := metav1.ListOptions{LabelSelector: v1alpha1.ManagedByLabel + "=" + v1alpha1.ManagedBy}
	roles, err := d.cl.Kube.RbacV1().Roles("").List(ctx, selector)
	if err != nil {
		return
	}
	sas, err := d.cl.Kube.CoreV1().ServiceAccounts(grant.Namespace).List(ctx, selector)
	if err != nil {
		return
	}
	secrets, err := d.cl.Kube.CoreV1().Secrets("").List(ctx, selector)
	if err != nil {
		return
	}
	have := map[string]bool{}
	for i := range secrets.Items {
		s := &secrets.Items[i]
		if a := s.Labels[v1alpha1.ImportingClusterLabel]; a != "" && grant.AnchorServiceAccount(s, a) != "" {
			have[a+" "+s.Namespace+"/"+grant.AnchorServiceAccount(s, a)] = true
		}
	}
	type want struct{ cluster, ns, sa string }
	var wants []want
	for _, sa := range sas.Items {
		if a := sa.Labels[v1alpha1.ImportingClusterLabel]; a != "" && sa.Name == grant.ServiceAccountName(a) {
			wants = append(wants, want{a, grant.Namespace, sa.Name})
		}
	}
	for i := range roles.Items {
		r := &roles.Items[i]
		a := r.Labels[v1alpha1.ImportingClusterLabel]
		if a == "" || r.Name != grant.ImportName(a) {
			continue
		}
		for _, sa := range grant.ImportedServiceAccounts(r) {
			wants = append(wants, want{a, r.Namespace, sa})
		}
	}
	if len(wants) == 0 {
		return
	}
	var missing, remedies []string
	for _, w := range wants {
		if have[w.cluster+" "+w.ns+"/"+w.sa] {
			continue
		}
		missing = append(missing, fmt.Sprintf("%s of %s/%s", w.cluster, w.ns, w.sa))
		if w.ns == grant.Namespace {
			remedies = append(remedies, fmt.Sprintf("`kubectl mcsa bootstrap %s %s`", w.cluster, d.cl.Context))
		} else {
			remedies = append(remedies, "`"+grant.AllowCommand(w.cluster, d.cl.Context, w.ns, w.sa)+"`")
		}
	}
	sort.Strings(missing)
	if len(missing) == 0 {
		d.add("grant anchors", true, fmt.Sprintf("every one of the %d grant(s) to importing clusters has its anchor", len(wants)), "")
		return
	}
	d.add("grant anchors", false, "grants without an anchor (their tokens cannot be revoked at once, and the importer gets none): "+strings.Join(missing, ", "),
		"re-run "+strings.Join(remedies, ", "))
}

func (d *doctor) importers(ctx context.Context) []string {
	l, err := d.cl.Kube.CoreV1().ServiceAccounts(grant.Namespace).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.ManagedByLabel + "=" + v1alpha1.ManagedBy})
	if err != nil {
		return nil
	}
	var names []string
	for _, sa := range l.Items {
		names = append(names, sa.Name)
	}
	sort.Strings(names)
	return names
}

func (d *doctor) controller(ctx context.Context) {
	dep, err := d.cl.Kube.AppsV1().Deployments(manifests.Namespace).Get(ctx, manifests.ControllerDeployment, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		d.add("controller", false, "deployment "+manifests.ControllerDeployment+" not found", d.install())
		return
	}
	if err != nil {
		d.add("controller", false, d.cl.APIError(err).Error(), "")
		return
	}
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	if dep.Status.AvailableReplicas < 1 {
		d.add("controller", false, fmt.Sprintf("deployment %s has no available replica (%d/%d)", manifests.ControllerDeployment, dep.Status.AvailableReplicas, want),
			fmt.Sprintf("kubectl%s -n %s describe deployment %s; kubectl%s -n %s logs deploy/%s", d.cl.ContextFlag(), manifests.Namespace, manifests.ControllerDeployment, d.cl.ContextFlag(), manifests.Namespace, manifests.ControllerDeployment))
		return
	}
	d.add("controller", true, fmt.Sprintf("deployment %s available (%d/%d)", manifests.ControllerDeployment, dep.Status.AvailableReplicas, want), "")
}

func (d *doctor) webhook(ctx context.Context) {
	w, err := d.cl.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, manifests.WebhookConfiguration, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		d.add("webhook", false, "MutatingWebhookConfiguration "+manifests.WebhookConfiguration+" not found", d.install())
		return
	}
	if err != nil {
		d.add("webhook", false, d.cl.APIError(err).Error(), "")
		return
	}
	restart := fmt.Sprintf("the controller injects it: check `kubectl%s -n %s logs deploy/%s`", d.cl.ContextFlag(), manifests.Namespace, manifests.ControllerDeployment)
	var bundle []byte
	for _, wh := range w.Webhooks {
		if len(wh.ClientConfig.CABundle) == 0 {
			d.add("webhook", false, fmt.Sprintf("webhook %s has no CA bundle: the API server cannot call it and annotated pods are rejected", wh.Name), restart)
			return
		}
		bundle = wh.ClientConfig.CABundle
	}
	secret, err := d.cl.Kube.CoreV1().Secrets(manifests.Namespace).Get(ctx, manifests.ServingCertSecret, metav1.GetOptions{})
	if err != nil {
		d.add("webhook", false, "serving certificate: "+d.cl.APIError(err).Error(), d.install())
		return
	}
	cert, err := parseCert(secret.Data[corev1.TLSCertKey])
	if err != nil {
		d.add("webhook", false, "serving certificate: "+err.Error(), restart)
		return
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		d.add("webhook", false, "the webhook's CA bundle holds no certificate", restart)
		return
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: d.now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		d.add("webhook", false, "the serving certificate does not verify against the webhook's CA bundle: "+err.Error(), restart)
		return
	}
	d.add("webhook", true, fmt.Sprintf("CA injected and matching the serving certificate, which expires in %s", duration.HumanDuration(cert.NotAfter.Sub(d.now))), "")
}

// parseCert reads the serving certificate, the first of the secret's chain.
func parseCert(b []byte) (*x509.Certificate, error) {
	certs, err := certutil.ParseCertsPEM(b)
	if err != nil {
		return nil, fmt.Errorf("secret %s (key %s): %w", manifests.ServingCertSecret, corev1.TLSCertKey, err)
	}
	return certs[0], nil
}

// credentials checks each cluster credential: secret, expiry, reachability with its token and
// the importer's rights there; for a federated one, the importer's report. With federated
// imports, it checks that this cluster serves its issuer discovery.
func (d *doctor) credentials(ctx context.Context) {
	client := &imports.Client{Clients: d.cl}
	creds, err := client.List(ctx, manifests.Namespace)
	if err != nil {
		d.add("clusters", false, err.Error(), "")
		return
	}
	all, err := client.List(ctx, "")
	if err != nil {
		d.add("clusters", false, err.Error(), "")
		return
	}
	found := false
	for i := range creds {
		sai := &creds[i]
		if !v1alpha1.IsClusterCredential(sai, manifests.Namespace) {
			continue
		}
		found = true
		d.credential(ctx, client, sai, all)
	}
	if !found {
		d.add("clusters", true, "no remote cluster yet", "kubectl mcsa bootstrap THIS_CONTEXT OTHER_CONTEXT")
	}
	d.discovery(ctx, all)
}

// discoveryPath is where an API server serves its service-account issuer's discovery document.
const discoveryPath = "/.well-known/openid-configuration"

// discovery checks, when this cluster has federated imports or credentials, that it serves its
// issuer discovery to anonymous callers: the clusters that trust its issuer fetch its keys so,
// and refuse its pods' tokens once their cached keys expire if they cannot.
func (d *doctor) discovery(ctx context.Context, all []v1alpha1.ServiceAccountImport) {
	// This cluster's name, as its cluster credentials give it, by remote cluster.
	importing := map[string]string{}
	var remotes []string
	for i := range all {
		imp := &all[i]
		if v1alpha1.IsClusterCredential(imp, manifests.Namespace) {
			importing[imp.Spec.ClusterName] = imp.Spec.Name
		}
		if v1alpha1.IsFederated(imp) && !slices.Contains(remotes, imp.Spec.ClusterName) {
			remotes = append(remotes, imp.Spec.ClusterName)
		}
	}
	if len(remotes) == 0 {
		return
	}
	sort.Strings(remotes)
	const name = "issuer discovery"
	url, status, err := d.anonymousGet(ctx, d.cl.Config, discoveryPath)
	trusting := strings.Join(remotes, ", ")
	b := remotes[0]
	a := importing[b]
	if a == "" {
		a = d.cl.Context
	}
	if a == "" {
		a = "THIS_CONTEXT"
	}
	refederate := fmt.Sprintf("re-run `%s` (it writes ClusterRoleBinding %s)", grant.FederateCommand(a, b), grant.DiscoveryBindingName)
	switch {
	case err != nil:
		d.add(name, false, fmt.Sprintf("could not fetch %s anonymously: %v", url, err), "")
	case status == http.StatusOK:
		d.add(name, true, fmt.Sprintf("served to anonymous callers at %s: %s can fetch this cluster's keys", url, trusting), "")
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		d.add(name, false, fmt.Sprintf("not served to anonymous callers at %s (HTTP %d): %s cannot fetch this cluster's keys, so its pods' tokens are refused once the cached keys expire",
			url, status, trusting), refederate)
	default:
		d.add(name, false, fmt.Sprintf("anonymous GET %s: HTTP %d", url, status), "")
	}
}

// federatedCredential checks a federated cluster credential: its ConfigMap (where the remote
// cluster is) and the importer's report, which names the broken link of the chain. There is no
// token, nor secret, to check.
func (d *doctor) federatedCredential(ctx context.Context, sai *v1alpha1.ServiceAccountImport) {
	name := "cluster " + sai.Name
	refederate := fmt.Sprintf("re-run `%s`", grant.FederateCommand(sai.Spec.Name, sai.Name))
	cmName := v1alpha1.FederatedConfigMapName(sai.Name)
	cm, err := d.cl.Kube.CoreV1().ConfigMaps(sai.Namespace).Get(ctx, cmName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		d.add(name, false, fmt.Sprintf("federated credential without its ConfigMap %s/%s: the importer does not know where %s is", sai.Namespace, cmName, sai.Name), refederate)
		return
	case err != nil:
		d.add(name, false, d.cl.APIError(err).Error(), "")
		return
	}
	at := "federated"
	if server := cm.Data[v1alpha1.SecretKeyServer]; server != "" {
		at += " at " + server
	}
	c := imports.Ready(sai)
	switch {
	case c == nil:
		d.add(name, false, at+": the importer has not reported on the credential",
			fmt.Sprintf("kubectl%s -n %s logs deploy/%s", d.cl.ContextFlag(), manifests.Namespace, manifests.ControllerDeployment))
	case c.Status == metav1.ConditionTrue:
		d.add(name, true, at+": "+c.Message, "")
	default:
		remedy := ""
		switch c.Reason {
		case v1alpha1.ReasonDiscoveryNotServed, v1alpha1.ReasonIssuerNotTrusted, v1alpha1.ReasonClusterUnknown:
			remedy = refederate
		case v1alpha1.ReasonClusterUnreachable:
			remedy = "check the URL (federate --source-server) and the network from this cluster"
		}
		d.add(name, false, fmt.Sprintf("%s: %s: %s", at, c.Reason, c.Message), remedy)
	}
}

func (d *doctor) credential(ctx context.Context, client *imports.Client, sai *v1alpha1.ServiceAccountImport, all []v1alpha1.ServiceAccountImport) {
	if v1alpha1.IsFederated(sai) {
		d.federatedCredential(ctx, sai)
		return
	}
	name := "cluster " + sai.Name
	rebootstrap := fmt.Sprintf("re-run `kubectl mcsa bootstrap THIS_CONTEXT %s`", sai.Name)
	secret, err := client.Secret(ctx, sai)
	if err != nil {
		d.add(name, false, err.Error(), rebootstrap)
		return
	}
	cred := credential.Parse(secret.Data)
	claims, err := inspect.DecodeToken(cred.Token)
	if err != nil {
		d.add(name, false, "credential token unreadable: "+err.Error(), rebootstrap)
		return
	}
	if left := claims.TimeLeft(d.now); left <= 0 {
		d.add(name, false, fmt.Sprintf("credential expired %s ago: the importer could not renew it", duration.HumanDuration(-left)), rebootstrap)
		return
	}
	cfg := cred.RESTConfig()
	cfg.Timeout = 10 * time.Second
	remote, err := d.remote(cfg)
	if err != nil {
		d.add(name, false, err.Error(), rebootstrap)
		return
	}
	rules, err := remote.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: grant.Namespace},
	}, metav1.CreateOptions{})
	switch {
	case apierrors.IsUnauthorized(err):
		d.add(name, false, "the remote API server refuses the credential (expired, revoked, or the cluster was rebuilt)", rebootstrap)
		return
	case err != nil:
		d.add(name, false, fmt.Sprintf("unreachable at %s: %v", cred.Server, err), "check the URL (bootstrap --source-server) and the network from this cluster")
		return
	}
	selfRenew := false
	for _, r := range rules.Status.ResourceRules {
		for _, res := range r.Resources {
			if res == "serviceaccounts/token" && containsAll(r.Verbs, "create") && containsAll(r.ResourceNames, sai.Spec.Name) {
				selfRenew = true
			}
		}
	}
	if !selfRenew {
		d.add(name, false, "the importer may not renew its own token there: its grant was removed", rebootstrap)
		return
	}
	// Which imports of this cluster B still grants: the token ones (B grants federated ones to
	// this cluster's pods, not to the importer; the importer reports on them).
	var granted, denied []string
	for _, imp := range all {
		if imp.Spec.ClusterName != sai.Name || (imp.Namespace == sai.Namespace && imp.Name == sai.Name) || v1alpha1.IsFederated(&imp) {
			continue
		}
		review, err := remote.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: imp.Spec.Namespace, Verb: "create", Resource: "serviceaccounts", Subresource: "token", Name: imp.Spec.Name,
			}},
		}, metav1.CreateOptions{})
		id := imp.Namespace + "/" + imp.Name
		if err != nil || !review.Status.Allowed {
			denied = append(denied, id)
		} else {
			granted = append(granted, id)
		}
	}
	msg := fmt.Sprintf("reachable at %s; credential expires in %s; the importer may renew it", cred.Server, duration.HumanDuration(claims.TimeLeft(d.now)))
	if len(granted)+len(denied) > 0 {
		msg += fmt.Sprintf(" and import %d of %d import(s)", len(granted), len(granted)+len(denied))
	}
	d.add(name, true, msg, "")
	if len(denied) > 0 {
		d.add(name+" grants", false, "not granted in "+sai.Name+": "+strings.Join(denied, ", "),
			fmt.Sprintf("in %s: kubectl mcsa allow THIS_CLUSTER NAMESPACE/SERVICEACCOUNT (see `kubectl mcsa get -A -o wide%s`)", sai.Name, d.cl.ContextFlag()))
	}
}

func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, l := range list {
			if l == w || l == "*" {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// imports groups the imports that are not ready by reason.
func (d *doctor) imports(ctx context.Context) {
	all, err := (&imports.Client{Clients: d.cl}).List(ctx, "")
	if err != nil {
		d.add("imports", false, err.Error(), "")
		return
	}
	byReason := map[string][]string{}
	example := map[string]string{}
	for i := range all {
		sai := &all[i]
		c := imports.Ready(sai)
		reason := "Pending"
		msg := "the importer has not reported on it"
		if c != nil {
			if c.Status == metav1.ConditionTrue {
				continue
			}
			reason, msg = c.Reason, c.Message
		}
		byReason[reason] = append(byReason[reason], sai.Namespace+"/"+sai.Name)
		if _, ok := example[reason]; !ok {
			example[reason] = msg
		}
	}
	if len(byReason) == 0 {
		d.add("imports", true, fmt.Sprintf("%d import(s), all ready", len(all)), "")
		return
	}
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		names := byReason[r]
		sort.Strings(names)
		d.add("imports "+r, false, fmt.Sprintf("%d import(s) not ready: %s", len(names), strings.Join(names, ", ")), example[r])
	}
}

// PrintChecks writes one line per check, with its remedy under failed ones.
func PrintChecks(w io.Writer, checks []Check, mark func(bool) string) {
	width := 0
	for _, c := range checks {
		width = max(width, len(c.Name))
	}
	current := "\x00"
	for _, c := range checks {
		if c.Context != current {
			current = c.Context
			name := c.Context
			if name == "" {
				name = "(current context)"
			}
			fmt.Fprintf(w, "Context %s:\n", name)
		}
		fmt.Fprintf(w, "  %s %-*s  %s\n", mark(c.OK), width, c.Name, c.Message)
		if !c.OK && c.Remedy != "" {
			fmt.Fprintf(w, "    → %s\n", c.Remedy)
		}
	}
}
