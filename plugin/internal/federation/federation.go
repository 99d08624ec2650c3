// Package federation lets the pods of a cluster A call a cluster B with their own
// service-account tokens (federated imports, v1alpha1.ModeFederated): B trusts A's issuer
// through a JWT authenticator (grant.Authenticator) in its kube-apiserver's
// AuthenticationConfiguration file, and A serves its issuer discovery to anonymous callers
// (grant.DiscoveryBinding) so that B can fetch A's keys. In A, the federated cluster
// credential (an import named after B, mode Federated, and its ConfigMap with B's server and CA)
// tells A's importer where B is, without any token of B.
//
// B's file is not an API object: the engine edits it when it is reachable from this machine
// (self-managed control planes, the playground, tests), all or nothing, and otherwise renders
// the authenticator for the operator to configure (managed platforms). Federate then waits for
// B to load its file and accept a token of A. B's entry names A's key IDs (grant.Issuer.KeyIDs),
// so that running federate again after A publishes a new key changes the entry, which makes B
// fetch A's keys anew: B does not by itself (kubernetes issue 139769).
package federation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/bootstrap"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// DryRun says what a dry run does.
type DryRun string

// Dry runs: none writes; client reads the clusters and B's file and writes nothing; server also
// sends every write to A with dryRun, so that A's API server validates it.
const (
	NoDryRun     DryRun = ""
	ClientDryRun DryRun = "client"
	ServerDryRun DryRun = "server"
)

// CanaryLifetime is the lifetime of the token of A that the verification presents to B.
const CanaryLifetime = 10 * time.Minute

// timings are the engine's waits; tests shorten them.
type timings struct {
	// interval is the pause between verification attempts and between discovery probes.
	interval time.Duration
	// probeTimeout bounds one fetch of an issuer's discovery document.
	probeTimeout time.Duration
	// discoveryGrace is how long A's discovery may take to serve anonymous callers after the
	// binding is written.
	discoveryGrace time.Duration
}

func (t timings) withDefaults() timings {
	if t.interval == 0 {
		t.interval = 2 * time.Second
	}
	if t.probeTimeout == 0 {
		t.probeTimeout = 5 * time.Second
	}
	if t.discoveryGrace == 0 {
		t.discoveryGrace = 20 * time.Second
	}
	return t
}

// Federate makes B trust A's issuer and gives A the federated cluster credential for B. Every
// step is idempotent: running it again changes nothing that is in place.
type Federate struct {
	// A is the importing cluster, whose pods act in B; B trusts A's issuer.
	A, B *kube.Clients
	// AName and BName are the clusters' names in kubectl-mcsa (DNS labels), as bootstrap's.
	AName, BName string
	// IssuerServer is A's API URL as B reaches it (default: A's kubeconfig's; a loopback one is
	// refused unless given here).
	IssuerServer string
	// SourceServer is B's API URL as A's pods reach it (bootstrap's --source-server).
	SourceServer string
	// AuthenticationConfig is B's kube-apiserver --authentication-config file, edited in place;
	// "" renders the authenticator for the operator instead.
	AuthenticationConfig string
	DryRun               DryRun
	// Wait is how long Verify waits for B to accept A's tokens.
	Wait time.Duration
	UI   *ui.UI

	timings timings
}

// Validate checks the names and flags; it needs no cluster.
func (f *Federate) Validate() error {
	if err := validateNames(f.AName, f.BName); err != nil {
		return err
	}
	if f.IssuerServer != "" {
		if err := httpsURL("--issuer-server", f.IssuerServer); err != nil {
			return err
		}
	}
	switch f.DryRun {
	case NoDryRun, ClientDryRun, ServerDryRun:
	default:
		return fmt.Errorf("dry run %q: want client or server", f.DryRun)
	}
	if f.Wait < 0 {
		return fmt.Errorf("--timeout %s: must not be negative", f.Wait)
	}
	return nil
}

func validateNames(a, b string) error {
	for _, n := range []struct{ flag, value string }{{"--target-name", a}, {"--source-name", b}} {
		if errs := validation.IsDNS1123Label(n.value); len(errs) > 0 {
			return fmt.Errorf("cluster name %q is not a DNS-1123 label: pass %s", n.value, n.flag)
		}
	}
	if a == b {
		return fmt.Errorf("both clusters are named %q: a cluster does not federate with itself; pass --target-name or --source-name", a)
	}
	return nil
}

func httpsURL(flag, s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s %q: want https://HOST[:PORT]", flag, s)
	}
	return nil
}

// Plan is what federate will do, found before anything is written.
type Plan struct {
	// Issuer is what B trusts of A.
	Issuer grant.Issuer
	// JWKSURI is where A's discovery document says its keys are: B fetches them there.
	JWKSURI string
	// Authenticator is B's JWT authenticator for A's issuer.
	Authenticator apiserverv1.JWTAuthenticator
	// Config is B's authentication configuration as federate leaves it (with a file), else a
	// configuration holding the authenticator alone, for the operator.
	Config *apiserverv1.AuthenticationConfiguration
	// File is B's file (nil without one); FileAction is what Trust did to it.
	File       *ConfigFile
	FileAction kube.Action
	// Replaced are entries of the file that the authenticator replaces: A's for a former issuer
	// of A, or a different one for A's issuer.
	Replaced []apiserverv1.JWTAuthenticator
	// KeysChanged: the file's entry for A's issuer is federate's, but names other key IDs of A
	// (FormerKeyIDs, nil for an entry written without them): A's keys changed, and the new entry
	// makes B rebuild its authenticator for A, which fetches them.
	KeysChanged  bool
	FormerKeyIDs []string
	// Server and CA are B's API URL as A's pods reach it, and B's CA (PEM).
	Server string
	CA     []byte
	// KeepCredential: A already has a cluster credential for B (bootstrap's, with a token),
	// which federated imports use; federate leaves it.
	KeepCredential bool
}

// Plan reads A's issuer and B's file and checks everything that can be checked before writing:
// a refusal leaves both clusters and the file as they were.
func (f *Federate) Plan(ctx context.Context) (*Plan, error) {
	if err := bootstrap.CheckSourceServer(f.B, f.BName, f.SourceServer); err != nil {
		return nil, err
	}
	server, ca, err := f.B.ServerAndCA()
	if err != nil {
		return nil, err
	}
	if f.SourceServer != "" {
		server = f.SourceServer
	}
	aServer, aCA, err := f.A.ServerAndCA()
	if err != nil {
		return nil, err
	}
	issuerServer, err := f.issuerServer(aServer)
	if err != nil {
		return nil, err
	}
	doc, err := readDiscovery(ctx, f.A)
	if err != nil {
		return nil, err
	}
	if err := CheckIssuer(doc.Issuer, f.AName, f.A.ContextFlag()); err != nil {
		return nil, err
	}
	// B refuses an authenticator for its own issuer; B's own is best read, not required.
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	own, err := ReadIssuer(bctx, f.B)
	cancel()
	if err == nil && own == doc.Issuer {
		return nil, fmt.Errorf("%s and %s have the same service-account issuer %q: %s's API server refuses an authenticator for its own issuer, and could not tell their tokens apart; give %s its own issuer (kube-apiserver --service-account-issuer)",
			f.AName, f.BName, own, f.BName, f.AName)
	}
	// A's key IDs, in B's entry: when they change, so does the entry, and B fetches A's keys.
	kids, err := ReadKeyIDs(ctx, f.A, doc.JWKSURI)
	if err != nil {
		return nil, err
	}
	p := &Plan{
		Issuer: grant.Issuer{
			URL:                  doc.Issuer,
			DiscoveryURL:         strings.TrimSuffix(issuerServer, "/") + DiscoveryPath,
			CertificateAuthority: string(aCA),
			KeyIDs:               kids,
		},
		JWKSURI: doc.JWKSURI,
		Server:  server,
		CA:      ca,
	}
	p.Authenticator = grant.Authenticator(f.AName, f.BName, p.Issuer)
	if p.KeepCredential, err = f.checkCredential(ctx); err != nil {
		return nil, err
	}
	if f.AuthenticationConfig == "" {
		p.Config = NewConfig(p.Authenticator)
		return p, nil
	}
	if p.File, err = ReadConfigFile(f.AuthenticationConfig); err != nil {
		return nil, err
	}
	cfg := p.File.Config.DeepCopy()
	cfg.JWT = slices.DeleteFunc(cfg.JWT, func(j apiserverv1.JWTAuthenticator) bool {
		stale := isFor(j, f.AName, f.BName) && j.Issuer.URL != doc.Issuer
		if stale {
			p.Replaced = append(p.Replaced, j)
		}
		return stale
	})
	for _, j := range cfg.JWT {
		if j.Issuer.URL != doc.Issuer || reflect.DeepEqual(j, p.Authenticator) {
			continue
		}
		former := p.Issuer
		former.KeyIDs = grant.AuthenticatorKeyIDs(j)
		if reflect.DeepEqual(j, grant.Authenticator(f.AName, f.BName, former)) {
			p.KeysChanged, p.FormerKeyIDs = true, former.KeyIDs
		} else {
			p.Replaced = append(p.Replaced, j)
		}
	}
	if err := grant.SetAuthenticator(cfg, p.Authenticator); err != nil {
		return nil, fmt.Errorf("%s: %w", f.AuthenticationConfig, err)
	}
	p.Config = cfg
	return p, nil
}

// issuerServer is A's API URL as B reaches it.
func (f *Federate) issuerServer(aServer string) (string, error) {
	if f.IssuerServer != "" {
		return f.IssuerServer, nil
	}
	u, err := url.Parse(aServer)
	if err != nil || !bootstrap.IsLoopback(u.Hostname()) {
		return aServer, nil
	}
	return "", fmt.Errorf("the API server of %s is %s in your kubeconfig, a loopback address: %s's kube-apiserver would fetch %s's keys from itself. "+
		"Pass the URL it reaches %s at with --issuer-server: for kind, `https://%s-control-plane:6443` when both clusters share kind's Docker network; "+
		"for k3d, the server container on the shared network; for minikube, `https://$(minikube ip -p PROFILE):8443`. "+
		"If %s's kube-apiserver does run on this host, repeat the URL: --issuer-server %s",
		f.AName, aServer, f.BName, f.AName, f.AName, f.AName, f.BName, aServer)
}

// checkCredential finds A's cluster credential for B: none (federate creates the federated
// one), a federated one (federate keeps it current), or a token one, which stays.
func (f *Federate) checkCredential(ctx context.Context) (keep bool, err error) {
	existing, err := (&imports.Client{Clients: f.A}).Get(ctx, manifests.Namespace, f.BName)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, err
	case !v1alpha1.IsClusterCredential(existing, manifests.Namespace):
		return false, fmt.Errorf("import %s/%s already exists in %s and imports from cluster %q, not %q: it is not a cluster credential; rename it, or pass --source-name",
			manifests.Namespace, f.BName, f.A.Describe(), existing.Spec.ClusterName, f.BName)
	}
	return !v1alpha1.IsFederated(existing), nil
}

// Trust writes A's discovery binding and, with a file, B's authenticator, after checking that B
// can fetch every issuer of the resulting file: B swaps its configuration all or nothing, so
// one unreachable issuer would block every later change (60 s per attempt).
func (f *Federate) Trust(ctx context.Context, p *Plan) ([]kube.Result, error) {
	t := f.timings.withDefaults()
	f.UI.Step("%s (%s): serving its issuer discovery to anonymous callers (ClusterRoleBinding %s), so that %s can fetch its keys",
		f.AName, f.A.Describe(), grant.DiscoveryBindingName, f.BName)
	r, err := write(ctx, f.A, grant.DiscoveryBinding(), f.DryRun)
	if err != nil {
		return nil, err
	}
	results := []kube.Result{r}
	if u, err := url.Parse(p.JWKSURI); err == nil && p.JWKSURI != "" {
		if d, err := url.Parse(p.Issuer.DiscoveryURL); err == nil && u.Host != d.Host {
			f.UI.Warn("%s's discovery document names its keys at %s: %s must reach that address too (kube-apiserver --service-account-jwks-uri on %s sets it)",
				f.AName, p.JWKSURI, f.BName, f.AName)
		}
	}
	f.UI.Info("%s's issuer %s publishes the keys %s, which %s's entry names", f.AName, p.Issuer.URL, keyList(p.Issuer.KeyIDs), f.BName)
	if p.File == nil {
		return results, nil
	}
	for _, j := range p.Replaced {
		f.UI.Warn("%s: replacing the authenticator for issuer %s (discovery %s)", p.File.Path, j.Issuer.URL, DiscoveryURL(j.Issuer))
	}
	if p.KeysChanged {
		f.UI.Info("%s's keys changed since %s's entry was written (it named %s): the new entry makes %s rebuild its authenticator for %s, which fetches them",
			f.AName, f.BName, keyList(p.FormerKeyIDs), f.BName, f.AName)
	}
	changed := p.File.Changed(p.Config)
	f.UI.Step("%s: checking, from here, that each of the %d issuers of %s serves its discovery document as %s fetches it", f.BName, len(p.Config.JWT), p.File.Path, f.BName)
	grace := func(iss apiserverv1.Issuer) time.Duration {
		if iss.URL == p.Issuer.URL && f.DryRun == NoDryRun {
			return t.discoveryGrace
		}
		return 0
	}
	failed, skipped := probeAll(ctx, p.Config, t.probeTimeout, t.interval, grace)
	for _, s := range skipped {
		f.UI.Warn("issuer %s is reached through an egress selector: not checked from here", s)
	}
	if len(failed) > 0 {
		msg := unreachableMessage(p.File.Path, failed, f.BName)
		if !changed || f.DryRun != NoDryRun {
			f.UI.Warn("%s", msg)
		} else {
			return results, errors.New("refusing to write " + msg)
		}
	}
	switch {
	case !changed:
		p.FileAction = kube.Unchanged
		f.UI.Info("%s already trusts %s's issuer %s: %s unchanged", f.BName, f.AName, p.Issuer.URL, p.File.Path)
	case f.DryRun != NoDryRun:
		p.FileAction = kube.Configured
		f.UI.Info("%s would be written (dry run): %s trusting %s's issuer %s", p.File.Path, f.BName, f.AName, p.Issuer.URL)
	default:
		if p.File.HasComments() {
			f.UI.Warn("%s had comments: the rewritten file has none", p.File.Path)
		}
		if err := p.File.Write(p.Config); err != nil {
			return results, err
		}
		p.FileAction = kube.Configured
		f.UI.Done("%s: %s trusts %s's issuer %s (audience %s); its kube-apiserver reloads the file in about 10 s",
			p.File.Path, f.BName, f.AName, p.Issuer.URL, v1alpha1.FederatedAudience(f.BName))
	}
	return results, nil
}

// keyList names key IDs for messages.
func keyList(kids []string) string {
	if len(kids) == 0 {
		return "(none)"
	}
	return strings.Join(kids, ", ")
}

// unreachableMessage explains issuers B could not fetch.
func unreachableMessage(path string, failed []*probeError, source string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s's kube-apiserver swaps this file all or nothing and keeps refusing every change (each attempt times out after 60 s) while one of its issuers is unreachable:", path, source)
	for _, e := range failed {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
		if e.status == http.StatusForbidden || e.status == http.StatusUnauthorized {
			b.WriteString(" (the issuer's cluster does not serve its discovery to anonymous callers: `kubectl mcsa federate` writes the ClusterRoleBinding " + grant.DiscoveryBindingName + " there)")
		}
		if a := ClusterOf(e.jwt); a != "" {
			fmt.Fprintf(&b, " (federate wrote it for %s: `kubectl mcsa unfederate %s %s --authentication-config %s` removes it)", a, a, source, path)
		}
	}
	b.WriteString("\nFix those issuers or remove their entries, then run this again")
	return b.String()
}

// Verification is what B answered a token of A.
type Verification struct {
	// ServiceAccount is A's service account the token is of (NAMESPACE/NAME).
	ServiceAccount string
	// User is the user B mapped it to.
	User string
	// Took is how long B took to accept it.
	Took time.Duration
}

// NotVerifiedError is a verification that ran out of time; its message names the link of the
// chain that fails.
type NotVerifiedError struct{ msg string }

func (e *NotVerifiedError) Error() string { return e.msg }

// Verify waits, with B's file, until B's kube-apiserver has loaded it as it is now (when its
// metrics tell: a token signed with A's current key does not tell B's former authenticator for
// A from the new one, which fetches A's keys anew); then mints a short-lived token of A's
// importer (of default/default without the importer) for B's audience, and asks B who it is
// with that token alone, until B answers with A's federated user or Wait runs out.
func (f *Federate) Verify(ctx context.Context, p *Plan) (*Verification, error) {
	t := f.timings.withDefaults()
	ns, sa, err := canaryServiceAccount(ctx, f.A)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	if p.File != nil {
		if err := f.waitLoaded(ctx, p); err != nil {
			return nil, err
		}
	}
	left := max(f.Wait-time.Since(began), t.interval) // Wait bounds both waits
	want := grant.FederatedUser(f.AName, ns, sa)
	tr, err := f.A.MintToken(ctx, ns, sa, CanaryLifetime, []string{v1alpha1.FederatedAudience(f.BName)})
	if err != nil {
		return nil, err
	}
	b, err := bearerClient(f.B, tr.Status.Token)
	if err != nil {
		return nil, err
	}
	f.UI.Step("verifying: does %s accept a token of %s's service account %s/%s, as %s? (up to %s)", f.BName, f.AName, ns, sa, want, left.Round(time.Second))
	start := time.Now()
	var last outcome
	err = wait.PollUntilContextTimeout(ctx, t.interval, left, true, func(ctx context.Context) (bool, error) {
		o := whoami(ctx, b)
		if ctx.Err() != nil {
			return false, nil // cut short by the deadline: the previous answer stands
		}
		if o.summary(want) != last.summary(want) {
			f.UI.Info("  %s: %s", time.Since(start).Round(time.Second), o.summary(want))
		}
		last = o
		return o.user == want, nil
	})
	if err == nil {
		v := &Verification{ServiceAccount: ns + "/" + sa, User: want, Took: time.Since(start)}
		f.UI.Done("%s accepts %s's tokens: %s/%s is %s there (after %s)", f.BName, f.AName, ns, sa, want, v.Took.Round(100*time.Millisecond))
		return v, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, &NotVerifiedError{f.diagnose(ctx, p, last, want)}
}

// canaryServiceAccount is the service account of A whose token verifies the chain: the
// importer's, which federated imports' checks use, else default/default.
func canaryServiceAccount(ctx context.Context, a *kube.Clients) (string, string, error) {
	_, err := a.Kube.CoreV1().ServiceAccounts(manifests.Namespace).Get(ctx, manifests.ControllerServiceAccount, metav1.GetOptions{})
	if err == nil {
		return manifests.Namespace, manifests.ControllerServiceAccount, nil
	}
	if !apierrors.IsNotFound(err) {
		return "", "", fmt.Errorf("reading service account %s/%s in %s: %w", manifests.Namespace, manifests.ControllerServiceAccount, a.Describe(), a.APIError(err))
	}
	if _, err := a.Kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
		return "", "", fmt.Errorf("no service account of %s to verify with: neither the importer's %s/%s (kubectl mcsa install%s) nor default/default: %w",
			a.Describe(), manifests.Namespace, manifests.ControllerServiceAccount, a.ContextFlag(), a.APIError(err))
	}
	return "default", "default", nil
}

// bearerClient is a client of c's API server that authenticates with token alone.
func bearerClient(c *kube.Clients, token string) (kubernetes.Interface, error) {
	server, ca, err := c.ServerAndCA()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(&rest.Config{
		Host:            server,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca, ServerName: c.Config.ServerName},
		Proxy:           c.Config.Proxy,
		UserAgent:       c.Config.UserAgent,
		Timeout:         10 * time.Second,
		QPS:             -1, // the callers poll at their own pace
	})
}

// outcome is one answer of B to the token.
type outcome struct {
	user string
	err  error
}

func whoami(ctx context.Context, c kubernetes.Interface) outcome {
	r, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return outcome{err: err}
	}
	return outcome{user: r.Status.UserInfo.Username}
}

func (o outcome) summary(want string) string {
	switch {
	case o.err == nil && o.user == "":
		return "not asked yet"
	case apierrors.IsUnauthorized(o.err):
		return "401 Unauthorized: no authenticator loaded for this issuer and audience yet"
	case o.err != nil:
		return o.err.Error()
	case o.user != want:
		return "accepted as " + o.user + ", not " + want
	}
	return "accepted as " + o.user
}

// diagnose says which link of the chain fails, from B's last answer and a probe of A's
// discovery from here.
func (f *Federate) diagnose(ctx context.Context, p *Plan, last outcome, want string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s did not accept %s's token within %s: %s.", f.BName, f.AName, f.Wait, last.summary(want))
	switch {
	case apierrors.IsUnauthorized(last.err):
		where := "the jwt entry printed above is in " + f.BName + "'s authentication configuration (the file given to its kube-apiserver's --authentication-config, or your platform's OIDC/JWT settings)"
		if p.File != nil {
			where = f.BName + "'s kube-apiserver reads " + p.File.Path + " (its --authentication-config flag)"
		}
		fmt.Fprintf(&b, " %s has no JWT authenticator for issuer %s and audience %s in effect. Check, in order:\n  1. %s;", f.BName, p.Issuer.URL, v1alpha1.FederatedAudience(f.BName), where)
		f.checkList(ctx, &b, p)
	case last.err == nil && last.user != "":
		fmt.Fprintf(&b, " Another authenticator for issuer %s maps %s's tokens differently: the entry was edited, or %s has not reloaded the file yet.", p.Issuer.URL, f.AName, f.BName)
	case last.err != nil:
		fmt.Fprintf(&b, " Check that %s's API server is reachable at %s from here.", f.BName, f.B.Config.Host)
	}
	b.WriteString("\nRun this again to wait longer: what is in place stays; --wait=false skips the verification.")
	return b.String()
}

// checkList is the rest of the links to check, in order, when B has not taken A's entry: A's
// discovery, probed from here, B's network, B's log.
func (f *Federate) checkList(ctx context.Context, b *strings.Builder, p *Plan) {
	t := f.timings.withDefaults()
	pctx, cancel := context.WithTimeout(ctx, t.probeTimeout)
	status, err := probeIssuer(pctx, apiserverv1.Issuer{URL: p.Issuer.URL, DiscoveryURL: &p.Issuer.DiscoveryURL, CertificateAuthority: p.Issuer.CertificateAuthority}, t.probeTimeout)
	cancel()
	switch {
	case err == nil:
		fmt.Fprintf(b, "\n  2. %s serves its discovery anonymously at %s: it does, from here;", f.AName, p.Issuer.DiscoveryURL)
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		fmt.Fprintf(b, "\n  2. %s serves its discovery anonymously at %s: it does NOT (%v): the ClusterRoleBinding %s is missing or changed in %s, run this again;", f.AName, p.Issuer.DiscoveryURL, err, grant.DiscoveryBindingName, f.AName)
	default:
		fmt.Fprintf(b, "\n  2. %s serves its discovery anonymously at %s: from here, %v;", f.AName, p.Issuer.DiscoveryURL, err)
	}
	fmt.Fprintf(b, "\n  3. %s reaches %s at %s and at the jwks_uri it names (%s), from its control plane: a loopback or private address may not be %s's (--issuer-server);", f.BName, f.AName, p.Issuer.DiscoveryURL, p.JWKSURI, f.BName)
	fmt.Fprintf(b, "\n  4. %s's kube-apiserver log says why a reload failed: it keeps its previous configuration while the file is invalid or any of its issuers is unreachable.", f.BName)
}

// Credential writes A's federated cluster credential for B: the import named after B in the
// importer's namespace, mode Federated, and its ConfigMap with B's server and CA, which the
// importer completes. A token credential (bootstrap's) stays: federated imports use its server
// and CA.
func (f *Federate) Credential(ctx context.Context, p *Plan) ([]kube.Result, error) {
	if p.KeepCredential {
		f.UI.Info("%s already has a cluster credential for %s (import %s/%s, from bootstrap): federated imports use its server and CA; it stays",
			f.AName, f.BName, manifests.Namespace, f.BName)
		return nil, nil
	}
	f.UI.Step("%s (%s): federated cluster credential %s/%s for %s at %s (no token: the importer uses its own)",
		f.AName, f.A.Describe(), manifests.Namespace, f.BName, f.BName, p.Server)
	var results []kube.Result
	r, err := write(ctx, f.A, grant.ImporterNamespace(), f.DryRun)
	if err != nil {
		return nil, err
	}
	results = append(results, r)
	imp := CredentialImport(f.AName, f.BName)
	if r, err = write(ctx, f.A, imp, f.DryRun); err != nil {
		return results, err
	}
	results = append(results, r)
	switch {
	case r.Live != nil:
		imp.UID = r.Live.GetUID()
	default: // a client dry run: the existing import's, if any
		if existing, err := (&imports.Client{Clients: f.A}).Get(ctx, manifests.Namespace, f.BName); err == nil {
			imp.UID = existing.UID
		}
	}
	cm, err := CredentialConfigMap(imp, p.Server, p.CA)
	if err != nil {
		return results, err
	}
	if r, err = write(ctx, f.A, cm, f.DryRun); err != nil {
		return results, err
	}
	return append(results, r), nil
}

// CredentialImport is A's federated cluster credential for B.
func CredentialImport(importingCluster, source string) *v1alpha1.ServiceAccountImport {
	return &v1alpha1.ServiceAccountImport{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceAccountImport"},
		ObjectMeta: metav1.ObjectMeta{Name: source, Namespace: manifests.Namespace},
		Spec: v1alpha1.ServiceAccountImportSpec{
			ClusterName: source,
			Namespace:   grant.Namespace,
			Name:        importingCluster,
			Mode:        v1alpha1.ModeFederated,
		},
	}
}

// CredentialConfigMap is the ConfigMap of the federated credential imp, as the importer keeps
// it (credential.NewConfigMap): B's server and CA, for the importer to find B, and whom the
// credential acts as. Without the import's UID (a client dry run before the import exists),
// it has no owner reference.
func CredentialConfigMap(imp *v1alpha1.ServiceAccountImport, server string, ca []byte) (*corev1.ConfigMap, error) {
	cm, err := credential.NewConfigMap(imp, credential.Federated{ClusterName: imp.Spec.ClusterName, Server: server, CAData: ca,
		Namespace: imp.Spec.Namespace, ServiceAccount: imp.Spec.Name})
	if err != nil {
		return nil, err
	}
	if imp.UID == "" {
		cm.OwnerReferences = nil
	}
	return cm, nil
}

// write applies obj, with dryRun for a server dry run; a client dry run only reads whether it
// exists.
func write(ctx context.Context, c *kube.Clients, obj runtime.Object, dryRun DryRun) (kube.Result, error) {
	if dryRun != ClientDryRun {
		return c.Apply(ctx, obj, dryRun == ServerDryRun)
	}
	u, err := kube.ToUnstructured(obj)
	if err != nil {
		return kube.Result{}, err
	}
	res := kube.Result{Object: u, Action: kube.Created}
	r, err := c.ResourceFor(u)
	if err != nil {
		return res, nil // a kind A does not serve yet: it would be created
	}
	switch _, err := r.Get(ctx, u.GetName(), metav1.GetOptions{}); {
	case err == nil:
		res.Action = kube.Configured
	case !apierrors.IsNotFound(err):
		return res, c.APIError(err)
	}
	return res, nil
}

// remove deletes obj, with dryRun for a server dry run; a client dry run only reads whether it
// exists. Missing objects are no result.
func remove(ctx context.Context, c *kube.Clients, obj runtime.Object, dryRun DryRun) (*kube.Result, error) {
	if dryRun != ClientDryRun {
		r, err := c.Delete(ctx, obj, dryRun == ServerDryRun)
		if err != nil || r.Action == kube.NotFound {
			return nil, err
		}
		return &r, nil
	}
	u, err := kube.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	r, err := c.ResourceFor(u)
	if err != nil {
		return nil, nil // a kind A does not serve: nothing to delete
	}
	switch _, err := r.Get(ctx, u.GetName(), metav1.GetOptions{}); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, c.APIError(err)
	}
	return &kube.Result{Object: u, Action: kube.Deleted}, nil
}

// ownedBy tells whether obj's controller is the object of that UID.
func ownedBy(obj metav1.Object, uid types.UID) bool {
	ref := metav1.GetControllerOfNoCopy(obj)
	return ref != nil && uid != "" && ref.UID == uid
}
