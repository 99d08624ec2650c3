package importer_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/internal/importer"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

// Cluster A (cluster1) imports from cluster B (cluster2).
const (
	clusterA = "cluster1"
	clusterB = "cluster2"
	ns       = v1alpha1.DefaultNamespace
	timeout  = 2 * time.Minute
)

// TestEndToEnd runs the importer in-process against two real control planes, with the
// identity and RBAC of manifests/controller in A and only the grants of internal/grant in B.
func TestEndToEnd(t *testing.T) {
	e := newEnv(t)
	e.startImporter(t, importer.Options{})

	t.Run("group", func(t *testing.T) {
		t.Run("import gives a working token and kubeconfig", e.testImport)
		t.Run("not granted, then granted", e.testGrantLater)
		t.Run("unknown cluster, then credential", e.testUnknownCluster)
		t.Run("remote service account created later", e.testServiceAccountLater)
		t.Run("forced refresh", e.testForcedRefresh)
		t.Run("namespace restriction", e.testNamespaceRestriction)
		t.Run("import deleted, secret collected", e.testGarbageCollection)
		t.Run("credential renews itself, and only itself", e.testCredential)
		t.Run("secret of someone else", e.testSecretConflict)
		t.Run("importer identity cannot be imported", e.testImporterIdentity)
		t.Run("grant's token policy, enforced by B itself", e.testGrantPolicy)
	})
	// Alone: they move the importer's clock, or stop and start the importer the others rely on.
	t.Run("secret edits cannot postpone a refresh", e.testSecretEditsCannotPostpone)
	t.Run("controller restart mid-way", e.testRestart)
	t.Run("out of cluster with kubeconfig clusters", e.testKubeconfigClusters)
}

type env struct {
	f    *fixture.Fixture
	a, b *fixture.Cluster
	// ac is A's admin client; akube and bkube are admin clientsets.
	ac           client.WithWatch
	akube, bkube kubernetes.Interface
	// importerConfig is the importer's identity in A (manifests/controller).
	importerConfig *rest.Config
	// bootstrapToken is the first token of the cluster credential, minted by B's admin.
	bootstrapToken string
	logs           *syncBuffer
	// clock is the importer's, unless a test gives another.
	clock *offsetClock

	mu   sync.Mutex
	stop func()
}

// offsetClock is the real clock moved by an offset that a test sets, so that the importer sees
// a token's refresh come due without the test waiting for it.
type offsetClock struct {
	clock.RealClock
	offset atomic.Int64
}

func (c *offsetClock) Now() time.Time                  { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// set makes the importer's now be t.
func (c *offsetClock) set(t time.Time) { c.offset.Store(int64(time.Until(t))) }

// newEnv starts A and B, installs kubectl-mcsa in A and bootstraps A's imports from B.
func newEnv(t *testing.T) *env {
	return newEnvWith(t, fixture.Options{
		Clusters:  []string{clusterA, clusterB},
		Install:   []string{clusterA},
		Bootstrap: []fixture.Link{{Target: clusterA, Source: clusterB}},
	})
}

// newEnvWith starts the clusters of opts (A and B), for the importer in A.
func newEnvWith(t *testing.T, opts fixture.Options) *env {
	f := fixture.ForTest(t, opts)
	a, b := f.Cluster(clusterA), f.Cluster(clusterB)
	e := &env{f: f, a: a, b: b, ac: a.Client, akube: a.Clientset(), bkube: b.Clientset(), logs: &syncBuffer{}, clock: &offsetClock{}}
	if len(opts.Bootstrap) > 0 {
		e.bootstrapToken = f.BootstrapToken(clusterA, clusterB)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(e.logs), zap.UseDevMode(true)))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("importer logs (tail):\n%s", e.logs.tail(150))
		}
	})
	e.importerConfig = rest.CopyConfig(a.ControllerConfig)
	e.importerConfig.QPS, e.importerConfig.Burst = 50, 100
	return e
}

// addCredential bootstraps A's imports from B again, with B named name in A.
func (e *env) addCredential(t *testing.T, name string) {
	_, err := e.f.BootstrapAs(t.Context(), clusterA, clusterB, name)
	must(t, err)
}

func (e *env) startImporter(t *testing.T, opts importer.Options) {
	mgr, err := ctrl.NewManager(e.importerConfig, ctrl.Options{
		Scheme:                        e.f.Scheme,
		Cache:                         importer.CacheOptions(),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionID:              manifests.LeaderElectionLease,
		LeaderElectionNamespace:       ns,
		LeaderElectionReleaseOnCancel: true,
		// Restarts register the same controller again in this process.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	must(t, err)
	opts.MaxRetryDelay = 2 * time.Second
	if opts.Clock == nil {
		opts.Clock = e.clock
	}
	must(t, importer.Setup(mgr, opts))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("importer: %v", err)
		}
	}
	t.Cleanup(e.stopImporter)
}

func (e *env) stopImporter() {
	e.mu.Lock()
	stop := e.stop
	e.stop = nil
	e.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (e *env) testImport(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e.nsA(t, "app1")
	e.serviceAccountB(t, "team1", "reader", nil)
	e.grantB(t, "team1", "reader")
	imp := e.createImport(t, "app1", "cluster2-team1-reader", clusterB, "team1", "reader", nil)
	short := e.createImport(t, "app1", "short-lived", clusterB, "team1", "reader", ptr.To[int64](900))
	// The longest legal name: its secret's name and label are derived to stay valid.
	longName := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	long := e.createImport(t, "app1", longName, clusterB, "team1", "reader", nil)
	imp = e.waitReason(t, imp, v1alpha1.ReasonTokenIssued)
	short = e.waitReason(t, short, v1alpha1.ReasonTokenIssued)
	long = e.waitReason(t, long, v1alpha1.ReasonTokenIssued)
	if ls := e.secret(t, long); ls == nil || len(ls.Name) != 253 || long.Status.Secrets[0].Name != ls.Name || !credential.OwnedBy(ls, long) {
		t.Errorf("secret of the longest name: %+v", ls)
	}

	s := e.secret(t, imp)
	if s == nil || s.Name != "cluster2-team1-reader-token" || s.Labels[v1alpha1.ImportNameKey] != imp.Name || !credential.OwnedBy(s, imp) {
		t.Fatalf("secret %+v", s)
	}
	for _, k := range []string{"token", "ca.crt", "namespace", "server", "config"} {
		if len(s.Data[k]) == 0 {
			t.Errorf("secret lacks %s", k)
		}
	}
	if string(s.Data["server"]) != e.b.Server || string(s.Data["namespace"]) != "team1" || !bytes.Equal(s.Data["ca.crt"], e.b.CAData) {
		t.Errorf("secret data: server %q namespace %q", s.Data["server"], s.Data["namespace"])
	}
	st := imp.Status
	if len(st.Secrets) != 1 || st.Secrets[0].Name != s.Name || st.ObservedGeneration != imp.Generation || st.LastRefreshTime == nil || st.ExpirationTimestamp == nil {
		t.Fatalf("status %+v", st)
	}
	if d := st.ExpirationTimestamp.Sub(st.LastRefreshTime.Time); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("default lifetime %s, want an hour", d)
	}
	if d := short.Status.ExpirationTimestamp.Sub(short.Status.LastRefreshTime.Time); d < 890*time.Second || d > 910*time.Second {
		t.Errorf("lifetime %s, want spec.expirationSeconds 900", d)
	}

	// The token is the remote service account's, in B.
	if got := e.whoami(t, string(s.Data["token"])); got != "system:serviceaccount:team1:reader" {
		t.Errorf("token authenticates as %q", got)
	}
	// So is the config, for the secret mounted where the webhook mounts it: B's CA inline, the
	// token read from the mounted file. A real client uses it, the token file being a copy here.
	raw, err := clientcmd.Load(s.Data["config"])
	must(t, err)
	current := raw.Contexts[raw.CurrentContext]
	if current == nil || raw.AuthInfos[current.AuthInfo] == nil || raw.Clusters[current.Cluster] == nil {
		t.Fatalf("config has no usable current context: %s", s.Data["config"])
	}
	user, cluster := raw.AuthInfos[current.AuthInfo], raw.Clusters[current.Cluster]
	if want := path.Join(v1alpha1.MountPath(imp.Name), v1alpha1.SecretKeyToken); user.TokenFile != want || !bytes.Equal(cluster.CertificateAuthorityData, e.b.CAData) || cluster.Server != e.b.Server {
		t.Errorf("config reads the token from %q (want %q), server %q, CA %q", user.TokenFile, want, cluster.Server, cluster.CertificateAuthorityData)
	}
	user.TokenFile = filepath.Join(t.TempDir(), v1alpha1.SecretKeyToken)
	must(t, os.WriteFile(user.TokenFile, s.Data[v1alpha1.SecretKeyToken], 0o600))
	cfg, err := clientcmd.NewDefaultClientConfig(*raw, nil).ClientConfig()
	must(t, err)
	ssr, err := kubernetes.NewForConfigOrDie(cfg).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	must(t, err)
	if got := ssr.Status.UserInfo.Username; got != "system:serviceaccount:team1:reader" {
		t.Errorf("config authenticates as %q", got)
	}

	if !slices.ContainsFunc(s.ManagedFields, func(f metav1.ManagedFieldsEntry) bool { return f.Manager == importer.FieldManager }) {
		t.Errorf("secret not written with field manager %s: %+v", importer.FieldManager, s.ManagedFields)
	}

	// The expiry is exported for alerting.
	if v, ok := gauge(t, "mcsa_import_token_expiration_timestamp_seconds", map[string]string{"namespace": "app1", "name": imp.Name}); !ok || int64(v) != st.ExpirationTimestamp.Unix() {
		t.Errorf("expiration metric = %v (found %v), want %d", v, ok, st.ExpirationTimestamp.Unix())
	}
}

func (e *env) testGrantLater(t *testing.T) {
	t.Parallel()
	e.nsA(t, "app2")
	e.serviceAccountB(t, "team2", "worker", nil)
	imp := e.createImport(t, "app2", "worker", clusterB, "team2", "worker", nil)
	imp = e.waitReason(t, imp, v1alpha1.ReasonForbidden)
	want := "`" + grant.AllowCommand(clusterA, clusterB, "team2", "worker") + "`"
	if msg := ready(imp).Message; !strings.Contains(msg, want) {
		t.Errorf("message %q does not name the remedy %s", msg, want)
	}
	if s := e.secret(t, imp); s != nil {
		t.Errorf("secret written without a token: %+v", s)
	}
	e.grantB(t, "team2", "worker")
	imp = e.waitReason(t, imp, v1alpha1.ReasonTokenIssued)
	if got := e.whoami(t, string(e.secret(t, imp).Data["token"])); got != "system:serviceaccount:team2:worker" {
		t.Errorf("token authenticates as %q", got)
	}
}

func (e *env) testUnknownCluster(t *testing.T) {
	t.Parallel()
	const alias = "cluster2-alias" // B again, under another name: a cluster A does not know yet
	e.nsA(t, "app3")
	e.serviceAccountB(t, "team3", "svc", nil)
	e.grantB(t, "team3", "svc")
	imp := e.createImport(t, "app3", "svc", alias, "team3", "svc", nil)
	imp = e.waitReason(t, imp, v1alpha1.ReasonClusterUnknown)
	want := "`" + grant.BootstrapCommand(clusterA, alias) + "`"
	if msg := ready(imp).Message; !strings.Contains(msg, want) {
		t.Errorf("message %q does not name the remedy %s", msg, want)
	}

	e.addCredential(t, alias)
	imp = e.waitReason(t, imp, v1alpha1.ReasonTokenIssued)
	token := string(e.secret(t, imp).Data["token"])
	if got := e.whoami(t, token); got != "system:serviceaccount:team3:svc" {
		t.Errorf("token authenticates as %q", got)
	}

	// Removing the credential takes effect too; the secret keeps its still valid token.
	must(t, e.ac.Delete(t.Context(), &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: alias}}))
	imp = e.waitReason(t, imp, v1alpha1.ReasonClusterUnknown)
	if s := e.secret(t, imp); s == nil || string(s.Data["token"]) != token {
		t.Errorf("secret changed when its cluster went away: %+v", s)
	}
}

func (e *env) testServiceAccountLater(t *testing.T) {
	t.Parallel()
	e.nsA(t, "app4")
	e.nsB(t, "team4")
	e.grantB(t, "team4", "late")
	imp := e.createImport(t, "app4", "late", clusterB, "team4", "late", nil)
	imp = e.waitReason(t, imp, v1alpha1.ReasonServiceAccountNotFound)
	e.serviceAccountB(t, "team4", "late", nil)
	imp = e.waitReason(t, imp, v1alpha1.ReasonTokenIssued)
	if got := e.whoami(t, string(e.secret(t, imp).Data["token"])); got != "system:serviceaccount:team4:late" {
		t.Errorf("token authenticates as %q", got)
	}
}

func (e *env) testForcedRefresh(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e.nsA(t, "app5")
	e.serviceAccountB(t, "team5", "rot", nil)
	e.grantB(t, "team5", "rot")
	imp := e.waitReason(t, e.createImport(t, "app5", "rot", clusterB, "team5", "rot", nil), v1alpha1.ReasonTokenIssued)
	oldToken := string(e.secret(t, imp).Data["token"])
	before := imp.Status.LastRefreshTime.Time
	// Times in status have a one-second resolution: let a second pass so that a move shows.
	must(t, wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		return time.Now().Truncate(time.Second).After(before), nil
	}))

	e.annotate(t, imp, v1alpha1.RefreshRequestedAnnotation, "2026-01-01T00:00:00Z")
	imp = e.waitFor(t, imp, "refresh acted upon", func(i *v1alpha1.ServiceAccountImport) bool {
		return i.Status.LastRefreshRequest == "2026-01-01T00:00:00Z"
	})
	newToken := string(e.secret(t, imp).Data["token"])
	if newToken == oldToken {
		t.Fatal("same token after a forced refresh")
	}
	if !imp.Status.LastRefreshTime.After(before) {
		t.Errorf("lastRefreshTime %s did not move from %s", imp.Status.LastRefreshTime, before)
	}
	// Clients still holding the previous token keep working until it expires.
	for _, tok := range []string{oldToken, newToken} {
		if got := e.whoami(t, tok); got != "system:serviceaccount:team5:rot" {
			t.Errorf("token authenticates as %q", got)
		}
	}
	e.waitEvent(t, imp, importer.EventTokenRefreshed)
}

func (e *env) testNamespaceRestriction(t *testing.T) {
	t.Parallel()
	e.nsA(t, "allowed6")
	e.nsA(t, "denied6")
	e.serviceAccountB(t, "team6", "restricted", map[string]string{v1alpha1.AllowedImportersAnnotation: clusterA + "/allowed6,cluster9/*"})
	e.grantB(t, "team6", "restricted")
	denied := e.createImport(t, "denied6", "restricted", clusterB, "team6", "restricted", nil)
	allowed := e.createImport(t, "allowed6", "restricted", clusterB, "team6", "restricted", nil)
	denied = e.waitReason(t, denied, v1alpha1.ReasonNamespaceNotAllowed)
	want := "`" + grant.AllowIntoNamespacesCommand(clusterA, clusterB, "team6", "restricted", "denied6") + "`"
	if msg := ready(denied).Message; !strings.Contains(msg, want) {
		t.Errorf("message %q does not name the remedy %s", msg, want)
	}
	if s := e.secret(t, denied); s != nil {
		t.Errorf("denied import got a secret")
	}
	allowed = e.waitReason(t, allowed, v1alpha1.ReasonTokenIssued)
	if got := e.whoami(t, string(e.secret(t, allowed).Data["token"])); got != "system:serviceaccount:team6:restricted" {
		t.Errorf("token authenticates as %q", got)
	}
}

func (e *env) testGarbageCollection(t *testing.T) {
	t.Parallel()
	e.nsA(t, "app7")
	e.serviceAccountB(t, "team7", "gc", nil)
	e.grantB(t, "team7", "gc")
	imp := e.waitReason(t, e.createImport(t, "app7", "gc", clusterB, "team7", "gc", nil), v1alpha1.ReasonTokenIssued)
	must(t, e.ac.Delete(t.Context(), imp))
	must(t, wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return e.secret(t, imp) == nil, nil
	}))
}

func (e *env) testCredential(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cred := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: clusterB}}
	cred = e.waitFor(t, cred, "credential renewed", func(i *v1alpha1.ServiceAccountImport) bool {
		c := ready(i)
		return c != nil && c.Reason == v1alpha1.ReasonTokenIssued && i.Status.LastRefreshTime != nil
	})
	token := string(e.secret(t, cred).Data["token"])
	if token == e.bootstrapToken {
		t.Fatal("the credential still holds bootstrap's token")
	}
	if got := e.whoami(t, token); got != grant.Username(clusterA) {
		t.Errorf("credential authenticates as %q, want %q", got, grant.Username(clusterA))
	}

	// Least privilege: the importer's identity may renew its own token and read the CA bundle B
	// publishes in its namespace, nothing else.
	e.serviceAccountB(t, grant.Namespace, "cluster9", nil) // another importing cluster's identity
	e.serviceAccountB(t, "team8", "unshared", nil)
	asImporter := e.clientB(t, token)
	mint := func(namespace, name string) error {
		_, err := asImporter.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600), BoundObjectRef: grant.BoundObjectRef(clusterA, name)}}, metav1.CreateOptions{})
		return err
	}
	must(t, mint(grant.Namespace, clusterA))
	_, err := asImporter.CoreV1().ConfigMaps(grant.Namespace).Get(ctx, grant.RootCAConfigMap, metav1.GetOptions{})
	must(t, err)
	denials := []struct {
		name string
		do   func() error
	}{
		{"token of a service account not granted", func() error { return mint("team8", "unshared") }},
		{"token of another importer", func() error { return mint(grant.Namespace, "cluster9") }},
		{"token in kube-system", func() error { return mint("kube-system", "default") }},
		{"read a service account not granted", func() error {
			_, err := asImporter.CoreV1().ServiceAccounts("team8").Get(ctx, "unshared", metav1.GetOptions{})
			return err
		}},
		{"list secrets", func() error { _, err := asImporter.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); return err }},
		{"read secrets of its namespace", func() error {
			_, err := asImporter.CoreV1().Secrets(grant.Namespace).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"read another ConfigMap of its namespace", func() error {
			_, err := asImporter.CoreV1().ConfigMaps(grant.Namespace).Get(ctx, grant.PoliciesName, metav1.GetOptions{})
			return err
		}},
		{"read the CA bundle of another namespace", func() error {
			_, err := asImporter.CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, grant.RootCAConfigMap, metav1.GetOptions{})
			return err
		}},
		{"list ConfigMaps of its namespace", func() error {
			_, err := asImporter.CoreV1().ConfigMaps(grant.Namespace).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"change its own grants", func() error {
			_, err := asImporter.RbacV1().Roles(grant.Namespace).Update(ctx, grant.SelfRenewRole(clusterA), metav1.UpdateOptions{})
			return err
		}},
	}
	for _, d := range denials {
		if err := d.do(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: got %v, want Forbidden", d.name, err)
		}
	}

	// A forced refresh of the credential renews it with itself; imports keep working with it.
	e.annotate(t, cred, v1alpha1.RefreshRequestedAnnotation, "credential-refresh")
	cred = e.waitFor(t, cred, "credential refresh acted upon", func(i *v1alpha1.ServiceAccountImport) bool {
		return i.Status.LastRefreshRequest == "credential-refresh"
	})
	if renewed := string(e.secret(t, cred).Data["token"]); renewed == token || e.whoami(t, renewed) != grant.Username(clusterA) {
		t.Errorf("credential not renewed as itself")
	}
	e.nsA(t, "app8")
	e.grantB(t, "team8", "unshared")
	imp := e.waitReason(t, e.createImport(t, "app8", "unshared", clusterB, "team8", "unshared", nil), v1alpha1.ReasonTokenIssued)
	if got := e.whoami(t, string(e.secret(t, imp).Data["token"])); got != "system:serviceaccount:team8:unshared" {
		t.Errorf("token authenticates as %q", got)
	}
}

func (e *env) testSecretConflict(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e.nsA(t, "app9")
	theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app9", Name: v1alpha1.SecretName("mine")}, StringData: map[string]string{"password": "hunter2"}}
	must(t, e.ac.Create(ctx, theirs))
	e.serviceAccountB(t, "team9", "mine", nil)
	e.grantB(t, "team9", "mine")
	imp := e.waitReason(t, e.createImport(t, "app9", "mine", clusterB, "team9", "mine", nil), v1alpha1.ReasonSecretConflict)
	if len(imp.Status.Secrets) != 0 {
		t.Errorf("status points at someone else's secret: %+v", imp.Status.Secrets)
	}
	got := &corev1.Secret{}
	must(t, e.ac.Get(ctx, client.ObjectKeyFromObject(theirs), got))
	if got.ResourceVersion != theirs.ResourceVersion || len(got.OwnerReferences) != 0 || len(got.Labels) != 0 {
		t.Errorf("someone else's secret was touched: %+v", got.ObjectMeta)
	}
}

func (e *env) testImporterIdentity(t *testing.T) {
	t.Parallel()
	e.nsA(t, "app10")
	imp := e.createImport(t, "app10", "steal", clusterB, grant.Namespace, grant.ServiceAccountName(clusterA), nil)
	imp = e.waitReason(t, imp, v1alpha1.ReasonInvalidSpec)
	if s := e.secret(t, imp); s != nil {
		t.Errorf("the importer's identity was handed out")
	}
}

// testSecretEditsCannotPostpone: a user of the import's namespace, who may edit its secret but
// not its status, rewrites the secret's schedule annotations (which earlier importers trusted)
// to postpone the refresh by a day. The importer refreshes when the token it issued is due all
// the same, the import's expiry stays the token's own, and a forced refresh still works.
func (e *env) testSecretEditsCannotPostpone(t *testing.T) {
	ctx := t.Context()
	defer e.clock.offset.Store(0)
	const tenantNS = "tenant"
	e.nsA(t, tenantNS)
	tenant, err := e.a.Tenant(ctx, tenantNS, "alice")
	must(t, err)
	e.serviceAccountB(t, "teamt", "short", nil)
	e.grantB(t, "teamt", "short")
	imp := e.waitReason(t, e.createImport(t, tenantNS, "short", clusterB, "teamt", "short", ptr.To[int64](600)), v1alpha1.ReasonTokenIssued)
	issued := imp.Status.LastRefreshTime.Time
	token := string(e.secret(t, imp).Data[v1alpha1.SecretKeyToken])
	if exp := jwtExpiry(t, token); !imp.Status.ExpirationTimestamp.Time.Equal(exp) || exp.Sub(issued) < 590*time.Second || exp.Sub(issued) > 610*time.Second {
		t.Fatalf("status expiry %s, token expiry %s, issued %s: want the token's, 600 s after issue", imp.Status.ExpirationTimestamp, exp, issued)
	}

	// The tenant may not write the status, where the schedule is.
	patch := client.RawPatch(types.MergePatchType, []byte(`{"status":{"expirationTimestamp":"2099-01-01T00:00:00Z"}}`))
	if err := tenant.Status().Patch(ctx, imp.DeepCopy(), patch); !apierrors.IsForbidden(err) {
		t.Fatalf("tenant patching the status: %v, want Forbidden", err)
	}

	// forge rewrites the secret's schedule as the tenant: a day-long token issued just now for
	// the current spec. It returns once the importer has handled the edit (it removes those
	// annotations), so that a reconcile is known to have run at the importer's current time.
	forge := func() {
		t.Helper()
		now := e.clock.Now()
		ann := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:%q,%q:"%d"}}}`,
			v1alpha1.TokenIssuedAtAnnotation, now.UTC().Format(time.RFC3339),
			v1alpha1.TokenExpiresAtAnnotation, now.Add(24*time.Hour).UTC().Format(time.RFC3339),
			v1alpha1.ImportGenerationAnnotation, imp.Generation)
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: v1alpha1.SecretName(imp.Name)}}
		must(t, tenant.Patch(ctx, secret, client.RawPatch(types.MergePatchType, []byte(ann))))
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			_, forged := e.secret(t, imp).Annotations[v1alpha1.TokenExpiresAtAnnotation]
			return !forged, nil
		})
		if err != nil {
			t.Fatalf("the importer did not handle the edited secret: its annotations stay %v; status %+v", e.secret(t, imp).Annotations, e.get(t, imp).Status)
		}
	}
	unchanged := func(when string) {
		t.Helper()
		got := e.get(t, imp)
		if !got.Status.LastRefreshTime.Time.Equal(issued) || !got.Status.ExpirationTimestamp.Time.Equal(imp.Status.ExpirationTimestamp.Time) {
			t.Fatalf("%s: status issued %s expires %s, want %s and %s", when, got.Status.LastRefreshTime, got.Status.ExpirationTimestamp, issued, imp.Status.ExpirationTimestamp)
		}
		if string(e.secret(t, imp).Data[v1alpha1.SecretKeyToken]) != token {
			t.Fatalf("%s: token refreshed", when)
		}
	}
	forge()
	unchanged("after the edit")

	// 400 s into the 600 s token, before the refresh window (75 to 85 % of the lifetime).
	e.clock.set(issued.Add(400 * time.Second))
	forge()
	unchanged("at 400 s")

	// 520 s in, past the window: due, whatever the secret says.
	e.clock.set(issued.Add(520 * time.Second))
	forge()
	imp = e.waitFor(t, imp, "refreshed on schedule", func(i *v1alpha1.ServiceAccountImport) bool {
		return i.Status.LastRefreshTime != nil && i.Status.LastRefreshTime.After(issued)
	})
	e.clock.offset.Store(0)
	renewed := string(e.secret(t, imp).Data[v1alpha1.SecretKeyToken])
	if renewed == token {
		t.Fatal("status moved, token did not")
	}
	if exp := jwtExpiry(t, renewed); !imp.Status.ExpirationTimestamp.Time.Equal(exp) {
		t.Errorf("status expiry %s, the token's %s", imp.Status.ExpirationTimestamp, exp)
	}

	// A forced refresh, asked by the tenant after another edit, still works.
	forge()
	must(t, tenant.Patch(ctx, imp.DeepCopy(), client.RawPatch(types.MergePatchType,
		fmt.Appendf(nil, `{"metadata":{"annotations":{%q:"tenant-asks"}}}`, v1alpha1.RefreshRequestedAnnotation))))
	imp = e.waitFor(t, imp, "forced refresh acted upon", func(i *v1alpha1.ServiceAccountImport) bool {
		return i.Status.LastRefreshRequest == "tenant-asks"
	})
	forced := string(e.secret(t, imp).Data[v1alpha1.SecretKeyToken])
	if forced == renewed {
		t.Fatal("same token after a forced refresh")
	}
	if exp := jwtExpiry(t, forced); !imp.Status.ExpirationTimestamp.Time.Equal(exp) {
		t.Errorf("status expiry %s, the token's %s", imp.Status.ExpirationTimestamp, exp)
	}
}

func (e *env) testRestart(t *testing.T) {
	ctx := t.Context()
	e.nsA(t, "restart")
	var names []string
	for i := range 6 {
		names = append(names, fmt.Sprintf("r%d", i))
	}
	for _, n := range names {
		e.serviceAccountB(t, "teamr", n, nil)
	}
	e.grantB(t, "teamr", names...)
	var imps []*v1alpha1.ServiceAccountImport
	for _, n := range names {
		imps = append(imps, e.createImport(t, "restart", n, clusterB, "teamr", n, nil))
	}
	// Stop as soon as the first secret exists: some imports done, others maybe not.
	must(t, wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return e.secret(t, imps[0]) != nil, nil
	}))
	e.stopImporter()
	before := map[string]string{}
	for _, imp := range imps {
		if s := e.secret(t, imp); s != nil {
			before[imp.Name] = string(s.Data["token"])
		}
	}
	t.Logf("stopped with %d of %d secrets written", len(before), len(imps))

	e.startImporter(t, importer.Options{})
	for i, imp := range imps {
		imps[i] = e.waitReason(t, imp, v1alpha1.ReasonTokenIssued)
	}
	var list corev1.SecretList
	must(t, e.ac.List(ctx, &list, client.InNamespace("restart")))
	if len(list.Items) != len(imps) {
		t.Errorf("%d secrets for %d imports", len(list.Items), len(imps))
	}
	for _, imp := range imps {
		var own corev1.SecretList
		must(t, e.ac.List(ctx, &own, client.InNamespace("restart"), client.MatchingLabels{v1alpha1.ImportNameKey: imp.Name}))
		if len(own.Items) != 1 || !credential.OwnedBy(&own.Items[0], imp) {
			t.Errorf("import %s has %d secrets", imp.Name, len(own.Items))
			continue
		}
		token := string(own.Items[0].Data["token"])
		if old, ok := before[imp.Name]; ok && old != token {
			t.Errorf("import %s: token replaced after the restart; its schedule was not recovered", imp.Name)
		}
		if got := e.whoami(t, token); got != "system:serviceaccount:teamr:"+imp.Name {
			t.Errorf("import %s: token authenticates as %q", imp.Name, got)
		}
	}
}

// testKubeconfigClusters runs the importer as in development: remote clusters are the contexts
// of a kubeconfig file, here B's admin context, so no grant is needed.
func (e *env) testKubeconfigClusters(t *testing.T) {
	const dev = "cluster2-dev"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, controlplane.WriteKubeconfig(path, e.b.Cluster))
	cfg, err := clientcmd.LoadFromFile(path)
	must(t, err)
	cfg.Contexts[dev] = cfg.Contexts[clusterB]
	delete(cfg.Contexts, clusterB)
	cfg.CurrentContext = dev
	must(t, clientcmd.WriteToFile(*cfg, path))
	e.stopImporter()
	e.startImporter(t, importer.Options{KubeconfigClusters: path, ClusterName: clusterA})

	e.nsA(t, "dev")
	e.serviceAccountB(t, "teamdev", "ungranted", nil)
	must(t, e.f.Anchor(t.Context(), clusterA, clusterB, "teamdev", "ungranted")) // tokens are bound to an anchor, whatever the credential
	e.serviceAccountB(t, "teamdev", "restricted", map[string]string{v1alpha1.AllowedImportersAnnotation: clusterA + "/elsewhere"})
	imp := e.waitReason(t, e.createImport(t, "dev", "ungranted", dev, "teamdev", "ungranted", nil), v1alpha1.ReasonTokenIssued)
	s := e.secret(t, imp)
	if string(s.Data["server"]) != e.b.Server {
		t.Errorf("server %q, want %q", s.Data["server"], e.b.Server)
	}
	if got := e.whoami(t, string(s.Data["token"])); got != "system:serviceaccount:teamdev:ungranted" {
		t.Errorf("token authenticates as %q", got)
	}
	// --cluster-name stands in for the credential's name in allowed-importers checks.
	e.waitReason(t, e.createImport(t, "dev", "restricted", dev, "teamdev", "restricted", nil), v1alpha1.ReasonNamespaceNotAllowed)
	// Credentials still work alongside.
	e.serviceAccountB(t, "teamdev", "granted", nil)
	e.grantB(t, "teamdev", "granted")
	e.waitReason(t, e.createImport(t, "dev", "granted", clusterB, "teamdev", "granted", nil), v1alpha1.ReasonTokenIssued)
}

// Helpers.

// testGrantPolicy: an import asking for more than its grant allows gets a token capped at the
// grant's maximum, and says so; one asking for an audience the grant does not list is refused
// with its own reason. B enforces the policy itself: TokenRequests made directly with the
// importer's credential, beyond the grant or not bound to its anchor, are refused by B's
// admission (a ValidatingAdmissionPolicy on serviceaccounts/token).
func (e *env) testGrantPolicy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e.nsA(t, "app-policy")
	e.serviceAccountB(t, "team-policy", "reader", nil)
	e.grantB(t, "team-policy", "reader")
	must(t, e.f.AnchorWithPolicy(ctx, clusterA, clusterB, "team-policy", grant.Policy{MaxLifetime: 20 * time.Minute, Audiences: []string{"vault"}}, "reader"))

	long := e.createImport(t, "app-policy", "long", clusterB, "team-policy", "reader", ptr.To[int64](v1alpha1.MaxExpirationSeconds))
	aud := e.createImport(t, "app-policy", "vault", clusterB, "team-policy", "reader", nil)
	aud.Spec.Audiences = []string{"vault"}
	must(t, e.ac.Update(ctx, aud))
	sts := e.createImport(t, "app-policy", "sts", clusterB, "team-policy", "reader", nil)
	sts.Spec.Audiences = []string{"sts.amazonaws.com"}
	must(t, e.ac.Update(ctx, sts))

	// 10^9 s (the ~136-year token of the audit) does not even reach the importer: the CRD's
	// schema refuses it.
	huge := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: "app-policy", Name: "huge"},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: clusterB, Namespace: "team-policy", Name: "reader", ExpirationSeconds: ptr.To[int64](1e9)}}
	if err := e.ac.Create(ctx, huge); !apierrors.IsInvalid(err) {
		t.Errorf("an import asking for 10^9 s: %v, want Invalid", err)
	}

	long = e.waitReason(t, long, v1alpha1.ReasonTokenIssued)
	if got := jwtExpiry(t, string(e.secret(t, long).Data["token"])).Sub(long.Status.LastRefreshTime.Time); got > 20*time.Minute+time.Minute {
		t.Errorf("token asked for 24h under a 20m grant lives %s", got)
	}
	if msg := ready(long).Message; !strings.Contains(msg, "capped at 20m0s") {
		t.Errorf("Ready message does not say the lifetime is capped: %s", msg)
	}
	e.waitReason(t, aud, v1alpha1.ReasonTokenIssued)
	e.waitReason(t, sts, v1alpha1.ReasonAudienceNotAllowed)
	if s := e.secret(t, sts); s != nil && len(s.Data["token"]) > 0 {
		t.Error("a refused import holds a token")
	}

	// The importer's own credential, used directly against B: only what the grant allows.
	importerB := e.clientB(t, e.bootstrapToken).CoreV1().ServiceAccounts("team-policy")
	must(t, e.b.CreateIfMissing(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-policy", Name: "not-an-anchor"}}))
	anchor := grant.BoundObjectRef(clusterA, "reader")
	other := &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: "not-an-anchor"}
	for _, tc := range []struct {
		name    string
		spec    authenticationv1.TokenRequestSpec
		allowed bool
	}{
		{"within the grant", authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600), BoundObjectRef: anchor}, true},
		{"allowed audience", authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600), BoundObjectRef: anchor, Audiences: []string{"vault"}}, true},
		{"beyond the maximum", authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](86400), BoundObjectRef: anchor}, false},
		{"default lifetime beyond the maximum", authenticationv1.TokenRequestSpec{BoundObjectRef: anchor}, false},
		{"other audience", authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600), BoundObjectRef: anchor, Audiences: []string{"sts.amazonaws.com"}}, false},
		{"unbound", authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}, false},
		{"bound to another secret", authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600), BoundObjectRef: other}, false},
	} {
		_, err := importerB.CreateToken(ctx, "reader", &authenticationv1.TokenRequest{Spec: tc.spec}, metav1.CreateOptions{})
		switch {
		case tc.allowed && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case !tc.allowed && !apierrors.IsForbidden(err):
			t.Errorf("%s: got %v, want B's admission to refuse it (Forbidden)", tc.name, err)
		}
	}
	// B's own administrators are not bound by grants.
	_, err := e.bkube.CoreV1().ServiceAccounts("team-policy").CreateToken(ctx, "reader",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](86400)}}, metav1.CreateOptions{})
	must(t, err)
}

func (e *env) createB(t *testing.T, o client.Object) {
	must(t, e.b.CreateIfMissing(t.Context(), o))
}

func (e *env) nsA(t *testing.T, name string) {
	must(t, e.ac.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}))
}

func (e *env) nsB(t *testing.T, name string) {
	e.createB(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
}

func (e *env) serviceAccountB(t *testing.T, namespace, name string, annotations map[string]string) {
	e.nsB(t, namespace)
	e.createB(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations}})
}

// grantB does what `kubectl mcsa allow cluster1 NAMESPACE/NAME...` does in B.
func (e *env) grantB(t *testing.T, namespace string, names ...string) {
	e.nsB(t, namespace)
	must(t, e.f.Allow(t.Context(), clusterA, clusterB, namespace, names...))
}

func (e *env) createImport(t *testing.T, namespace, name, cluster, remoteNS, remoteName string, seconds *int64) *v1alpha1.ServiceAccountImport {
	imp := &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: cluster, Namespace: remoteNS, Name: remoteName, ExpirationSeconds: seconds},
	}
	must(t, e.ac.Create(t.Context(), imp))
	return imp
}

func (e *env) annotate(t *testing.T, imp *v1alpha1.ServiceAccountImport, key, value string) {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, key, value)
	must(t, e.ac.Patch(t.Context(), imp.DeepCopy(), client.RawPatch("application/merge-patch+json", patch)))
}

// waitFor watches the import until cond holds.
func (e *env) waitFor(t *testing.T, imp *v1alpha1.ServiceAccountImport, what string, cond func(*v1alpha1.ServiceAccountImport) bool) *v1alpha1.ServiceAccountImport {
	t.Helper()
	got, err := fixture.WaitFor(t.Context(), e.ac, imp, timeout, cond)
	if err != nil {
		var status any = "none: not found"
		if got != nil {
			status = got.Status
		}
		t.Fatalf("%s/%s: %s: %v; status %+v", imp.Namespace, imp.Name, what, err, status)
	}
	return got
}

// waitReason waits for the Ready condition to report reason for the current generation.
func (e *env) waitReason(t *testing.T, imp *v1alpha1.ServiceAccountImport, reason string) *v1alpha1.ServiceAccountImport {
	t.Helper()
	return e.waitFor(t, imp, "Ready reason "+reason, func(i *v1alpha1.ServiceAccountImport) bool {
		c := ready(i)
		return c != nil && c.Reason == reason && c.ObservedGeneration == i.Generation && i.Status.ObservedGeneration == i.Generation &&
			(c.Status == metav1.ConditionTrue) == (reason == v1alpha1.ReasonTokenIssued || reason == v1alpha1.ReasonFederated)
	})
}

func (e *env) waitEvent(t *testing.T, imp *v1alpha1.ServiceAccountImport, reason string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var list eventsv1.EventList
		if err := e.ac.List(ctx, &list, client.InNamespace(imp.Namespace)); err != nil {
			return false, nil
		}
		for _, ev := range list.Items {
			if ev.Regarding.Name == imp.Name && ev.Reason == reason && ev.ReportingController == importer.FieldManager {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no %s event for %s/%s: %v", reason, imp.Namespace, imp.Name, err)
	}
}

// get reads the import directly.
func (e *env) get(t *testing.T, imp *v1alpha1.ServiceAccountImport) *v1alpha1.ServiceAccountImport {
	t.Helper()
	got := &v1alpha1.ServiceAccountImport{}
	must(t, e.ac.Get(t.Context(), client.ObjectKeyFromObject(imp), got))
	return got
}

// jwtExpiry is the expiry a service account token carries (its exp claim, unverified).
func jwtExpiry(t *testing.T, token string) time.Time {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	must(t, err)
	var claims struct {
		Exp int64 `json:"exp"`
	}
	must(t, json.Unmarshal(payload, &claims))
	return time.Unix(claims.Exp, 0)
}

// secret returns the import's secret, read directly, or nil.
func (e *env) secret(t *testing.T, imp *v1alpha1.ServiceAccountImport) *corev1.Secret {
	s, err := e.akube.CoreV1().Secrets(imp.Namespace).Get(t.Context(), v1alpha1.SecretName(imp.Name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	must(t, err)
	return s
}

func (e *env) clientB(t *testing.T, token string) kubernetes.Interface {
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: e.b.Server, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: e.b.CAData}})
	must(t, err)
	return cs
}

// whoami is the user a token authenticates as in B.
func (e *env) whoami(t *testing.T, token string) string {
	t.Helper()
	ssr, err := e.clientB(t, token).AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Errorf("token does not authenticate in %s: %v", clusterB, err)
		return ""
	}
	return ssr.Status.UserInfo.Username
}

func ready(imp *v1alpha1.ServiceAccountImport) *metav1.Condition {
	return meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionReady)
}

// gauge reads a gauge of the controller-runtime metrics registry.
func gauge(t *testing.T, name string, labels map[string]string) (float64, bool) {
	families, err := ctrlmetrics.Registry.Gather()
	must(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metrics
				}
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// syncBuffer collects the importer's logs, shown when a test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(s.b.String()), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
