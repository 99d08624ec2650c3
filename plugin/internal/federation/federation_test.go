package federation

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube/kubefake"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// A federation between fake clusters: A (cluster1) and B (cluster2) are kubefake stores behind
// their typed and dynamic clients, and httptest servers for what the engine reaches over HTTP:
// A's discovery (for its admin, and for anonymous callers once the binding is in A's store) and
// B's discovery and SelfSubjectReviews, which B answers from the authenticators of its file as
// a loaded kube-apiserver would.

const admin = "admin-token"

var (
	crbGVK = rbacv1.SchemeGroupVersion.WithKind("ClusterRoleBinding")
	saiGVK = v1alpha1.GroupVersion.WithKind("ServiceAccountImport")
	cmGVK  = corev1.SchemeGroupVersion.WithKind("ConfigMap")
)

type bed struct {
	a, b       *kubefake.Cluster
	ac, bc     *kube.Clients
	aSrv, bSrv *httptest.Server
	// issuer is what A's discovery says (kubefake's tokens say https://cluster1).
	issuer string
	// file is B's authentication configuration.
	file string
	// loaded says whether B uses its file (false: B answers 401 to everything federated).
	loaded atomic.Bool
	// keys are the key IDs of A's JWKS; jwks, when set, is served instead of them ("403": a
	// refusal).
	keys []string
	jwks string
	// jwksURI is the jwks_uri of A's discovery (default: A's JWKSPath).
	jwksURI string
	// stale: B keeps the configuration it loaded before (its metric names another hash), while
	// still authenticating from the file; metricsStatus, when not 0, is B's answer to /metrics
	// (-1: metrics without the reload metric).
	stale         atomic.Bool
	metricsStatus atomic.Int32
	out           bytes.Buffer
}

func pemOf(s *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

func newBed(t *testing.T) *bed {
	t.Helper()
	e := &bed{a: kubefake.New("cluster1"), b: kubefake.New("cluster2"), issuer: "https://cluster1", keys: []string{"key-1"}}
	e.loaded.Store(true)
	e.aSrv = httptest.NewTLSServer(http.HandlerFunc(e.serveA))
	e.bSrv = httptest.NewTLSServer(http.HandlerFunc(e.serveB))
	t.Cleanup(e.aSrv.Close)
	t.Cleanup(e.bSrv.Close)
	e.ac, e.bc = e.a.Clients(), e.b.Clients()
	for _, p := range []struct {
		c   *kube.Clients
		srv *httptest.Server
	}{{e.ac, e.aSrv}, {e.bc, e.bSrv}} {
		p.c.Config.Host, p.c.Config.CAData, p.c.Config.BearerToken = p.srv.URL, pemOf(p.srv), admin
	}
	// A, installed: the importer's namespace and service account.
	e.a.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manifests.Namespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "default"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: manifests.Namespace, Name: manifests.ControllerServiceAccount}})
	e.file = filepath.Join(t.TempDir(), "authentication-config.yaml")
	if err := os.WriteFile(e.file, []byte("apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *bed) serveA(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != DiscoveryPath && r.URL.Path != JWKSPath {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+admin && e.a.Object(crbGVK, "", grant.DiscoveryBindingName) == nil {
		http.Error(w, `{"kind":"Status","code":403}`, http.StatusForbidden)
		return
	}
	if r.URL.Path == JWKSPath {
		if e.jwks == "403" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}`))
			return
		}
		if e.jwks != "" {
			_, _ = w.Write([]byte(e.jwks))
			return
		}
		keys := []map[string]string{}
		for _, k := range e.keys {
			keys = append(keys, map[string]string{"use": "sig", "kty": "RSA", "kid": k, "alg": "RS256", "n": "AQAB", "e": "AQAB"})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
		return
	}
	jwksURI := e.jwksURI
	if jwksURI == "" {
		jwksURI = e.aSrv.URL + JWKSPath
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"issuer": e.issuer, "jwks_uri": jwksURI})
}

func (e *bed) serveB(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case DiscoveryPath:
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": "https://cluster2", "jwks_uri": e.bSrv.URL + "/openid/v1/jwks"})
	case "/apis/authentication.k8s.io/v1/selfsubjectreviews":
		user := e.authenticate(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if user == "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(&authenticationv1.SelfSubjectReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "SelfSubjectReview"},
			Status:   authenticationv1.SelfSubjectReviewStatus{UserInfo: authenticationv1.UserInfo{Username: user}}})
	case "/metrics":
		switch code := e.metricsStatus.Load(); {
		case code > 0:
			http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","code":`+fmt.Sprint(code)+`}`, int(code))
			return
		case code < 0 || r.URL.Query().Get("name[]") != LoadedConfigMetric:
			_, _ = w.Write([]byte("# TYPE apiserver_request_total counter\napiserver_request_total{code=\"200\"} 1\n"))
			return
		}
		hash := "sha256:0000"
		if raw, err := os.ReadFile(e.file); err == nil && e.loaded.Load() && !e.stale.Load() {
			hash = ConfigHash(raw)
		}
		_, _ = fmt.Fprintf(w, "# HELP %s [ALPHA] Information about the last applied authentication configuration\n# TYPE %[1]s gauge\n%[1]s{apiserver_id_hash=\"sha256:1111\",hash=\"%s\"} 1\n", LoadedConfigMetric, hash)
	default:
		http.NotFound(w, r)
	}
}

// authenticate maps a kubefake token of A as B's loaded file would: "" when no authenticator
// takes it.
func (e *bed) authenticate(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || !e.loaded.Load() {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Iss string   `json:"iss"`
		Sub string   `json:"sub"`
		Aud []string `json:"aud"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	raw, err := os.ReadFile(e.file)
	if err != nil {
		return ""
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		return ""
	}
	for _, j := range cfg.JWT {
		if j.Issuer.URL == claims.Iss && slices.ContainsFunc(j.Issuer.Audiences, func(a string) bool { return slices.Contains(claims.Aud, a) }) {
			return ClusterOf(j) + ":" + claims.Sub
		}
	}
	return ""
}

func (e *bed) federate() *Federate {
	return &Federate{
		A: e.ac, B: e.bc, AName: "cluster1", BName: "cluster2",
		IssuerServer: e.aSrv.URL, SourceServer: e.bSrv.URL,
		AuthenticationConfig: e.file, Wait: 5 * time.Second, UI: ui.New(&e.out),
		timings: timings{interval: 20 * time.Millisecond, probeTimeout: 2 * time.Second, discoveryGrace: time.Second},
	}
}

// run runs federate's steps as the command does.
func run(ctx context.Context, f *Federate) (*Plan, []kube.Result, error) {
	p, err := f.Plan(ctx)
	if err != nil {
		return nil, nil, err
	}
	results, err := f.Trust(ctx, p)
	if err != nil {
		return p, results, err
	}
	if f.DryRun == NoDryRun && f.Wait > 0 {
		if _, err := f.Verify(ctx, p); err != nil {
			return p, results, err
		}
	}
	creds, err := f.Credential(ctx, p)
	return p, append(results, creds...), err
}

func readConfig(t *testing.T, path string) *apiserverv1.AuthenticationConfiguration {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func actions(results []kube.Result) []string {
	var s []string
	for _, r := range results {
		s = append(s, fmt.Sprintf("%s/%s %s", strings.ToLower(r.Object.GetKind()), r.Object.GetName(), r.Action))
	}
	return s
}

func TestFederate(t *testing.T) {
	ctx := context.Background()
	e := newBed(t)
	_, results, err := run(ctx, e.federate())
	if err != nil {
		t.Fatalf("%v\n%s", err, e.out.String())
	}
	want := []string{
		"clusterrolebinding/" + grant.DiscoveryBindingName + " created",
		"namespace/" + manifests.Namespace + " configured", // labelled
		"serviceaccountimport/cluster2 created",
		"configmap/" + v1alpha1.FederatedConfigMapName("cluster2") + " created",
	}
	if got := actions(results); !slices.Equal(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
	// B's file: A's authenticator, as grant renders it, with A's discovery where B reaches it.
	cfg := readConfig(t, e.file)
	wantAuth := grant.Authenticator("cluster1", "cluster2", grant.Issuer{URL: e.issuer, DiscoveryURL: e.aSrv.URL + DiscoveryPath, CertificateAuthority: string(pemOf(e.aSrv)), KeyIDs: e.keys})
	if len(cfg.JWT) != 1 || !equalJSON(cfg.JWT[0], wantAuth) {
		t.Errorf("file holds %+v", cfg.JWT)
	}
	// The verification named the federated user of A's importer.
	if user := grant.FederatedUser("cluster1", manifests.Namespace, manifests.ControllerServiceAccount); !strings.Contains(e.out.String(), "cluster2 accepts cluster1's tokens") || !strings.Contains(e.out.String(), user) {
		t.Errorf("no verification in the output:\n%s", e.out.String())
	}
	// A: the credential, mode Federated, and its ConfigMap, controlled by it.
	sai := e.a.Object(saiGVK, manifests.Namespace, "cluster2")
	if sai == nil {
		t.Fatal("no credential")
	}
	var imp v1alpha1.ServiceAccountImport
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(sai.Object, &imp); err != nil {
		t.Fatal(err)
	}
	if s := imp.Spec; s.ClusterName != "cluster2" || s.Namespace != grant.Namespace || s.Name != "cluster1" || s.Mode != v1alpha1.ModeFederated {
		t.Errorf("credential spec %+v", s)
	}
	u := e.a.Object(cmGVK, manifests.Namespace, v1alpha1.FederatedConfigMapName("cluster2"))
	if u == nil {
		t.Fatal("no ConfigMap")
	}
	var cm corev1.ConfigMap
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &cm); err != nil {
		t.Fatal(err)
	}
	if !ownedBy(&cm, imp.UID) || cm.Labels[v1alpha1.ImportNameKey] != v1alpha1.SecretLabelValue("cluster2") ||
		cm.Data[v1alpha1.SecretKeyServer] != e.bSrv.URL || cm.Data[v1alpha1.SecretKeyCACert] != string(pemOf(e.bSrv)) {
		t.Errorf("ConfigMap %+v", cm)
	}

	// Again: nothing changes, the file is not even rewritten.
	before, _ := os.Stat(e.file)
	names := e.a.Names()
	time.Sleep(10 * time.Millisecond)
	_, results, err = run(ctx, e.federate())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Action != kube.Unchanged {
			t.Errorf("second run: %s/%s %s", r.Object.GetKind(), r.Object.GetName(), r.Action)
		}
	}
	after, _ := os.Stat(e.file)
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Error("second run rewrote the file")
	}
	if !slices.Equal(names, e.a.Names()) {
		t.Errorf("second run: %v, then %v", names, e.a.Names())
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestCheckIssuer(t *testing.T) {
	for _, tt := range []struct {
		issuer string
		want   string // "" accepted
	}{
		{"https://kubernetes.default.svc.cluster.local", "the default that clusters"},
		{"https://kubernetes.default.svc.cluster.local/", "the default that clusters"},
		{"https://kubernetes.default.svc", "the default that clusters"},
		{"HTTPS://Kubernetes.Default.Svc", "the default that clusters"},
		{"kubernetes.default.svc", "the default that clusters"},
		{"https://kubernetes.default", "the default that clusters"},
		{"https://kubernetes", "the default that clusters"},
		{"https://kubernetes.default.svc:443", "the default that clusters"},
		{"http://cluster1.example.com", "needs an https URL"},
		{"https://cluster1.example.com?x=1", "needs an https URL"},
		{"", "needs an https URL"},
		{"https://cluster1.example.com", ""},
		{"https://oidc.eks.eu-west-1.amazonaws.com/id/ABC", ""},
		{"https://kubernetes.default.svc/cluster1", ""}, // a path makes it its own
	} {
		t.Run(tt.issuer, func(t *testing.T) {
			err := CheckIssuer(tt.issuer, "cluster1", " --context cluster1")
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
	err := CheckIssuer("https://kubernetes.default.svc.cluster.local", "cluster1", " --context cluster1")
	for _, remedy := range []string{"--service-account-issuer", "kubeadmConfigPatches", "--k3s-arg", "kubectl get --raw /.well-known/openid-configuration --context cluster1"} {
		if !strings.Contains(err.Error(), remedy) {
			t.Errorf("the refusal does not say %q: %v", remedy, err)
		}
	}
}

// TestPlanRefusals: what Plan refuses leaves A, B and the file as they were.
func TestPlanRefusals(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(e *bed, f *Federate)
		want   string
		checks bool
	}{
		{"shared default issuer", func(e *bed, _ *Federate) { e.issuer = "https://kubernetes.default.svc.cluster.local" }, "the default that clusters", false},
		{"same issuer as B", func(e *bed, _ *Federate) { e.issuer = "https://cluster2" }, "the same service-account issuer", false},
		{"A's server is loopback", func(_ *bed, f *Federate) { f.IssuerServer = "" }, "--issuer-server " + "https://127.0.0.1", false},
		{"B's server is loopback", func(_ *bed, f *Federate) { f.SourceServer = "" }, "--source-server https://127.0.0.1", false},
		{"no import API in A", func(e *bed, _ *Federate) { e.a.Unserve(v1alpha1.Resource) }, "kubectl mcsa install --context cluster1", false},
		{"an import named after B that is not a credential", func(e *bed, _ *Federate) {
			e.a.Add(&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: manifests.Namespace, Name: "cluster2"},
				Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster3", Namespace: "ns", Name: "sa"}})
		}, "not a cluster credential", false},
		{"missing file", func(e *bed, _ *Federate) { _ = os.Remove(e.file) }, "does not exist: give the file B's kube-apiserver reads", false},
		{"unknown field", func(e *bed, _ *Federate) {
			writeFile(t, e.file, "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt: []\nfuture: {}\n")
		}, `unknown field "future"`, true},
		{"older version", func(e *bed, _ *Federate) {
			writeFile(t, e.file, "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\njwt: []\n")
		}, "want apiVersion apiserver.config.k8s.io/v1", true},
		{"another kind", func(e *bed, _ *Federate) {
			writeFile(t, e.file, "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\n")
		}, "kind AuthenticationConfiguration", true},
		{"too large", func(e *bed, _ *Federate) {
			writeFile(t, e.file, "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt: []\n"+strings.Repeat("#\n", MaxConfigSize))
		}, "larger than", true},
		{"64 authenticators already", func(e *bed, _ *Federate) {
			cfg := NewConfig()
			for i := range grant.MaxJWTAuthenticators {
				cfg.JWT = append(cfg.JWT, grant.Authenticator(fmt.Sprintf("c%d", i), "cluster2", grant.Issuer{URL: fmt.Sprintf("https://c%d.example", i), DiscoveryURL: fmt.Sprintf("https://c%d.example/d", i)}))
			}
			b, _ := MarshalConfig(cfg)
			writeFile(t, e.file, string(b))
		}, "already has 64 JWT authenticators", true},
		{"same discovery URL as another issuer", func(e *bed, _ *Federate) {
			b, _ := MarshalConfig(NewConfig(apiserverv1.JWTAuthenticator{Issuer: apiserverv1.Issuer{URL: "https://other", DiscoveryURL: ptr.To(e.aSrv.URL + DiscoveryPath), Audiences: []string{"x"}}}))
			writeFile(t, e.file, string(b))
		}, "is already that of issuer https://other", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBed(t)
			f := e.federate()
			tt.setup(e, f)
			raw, _ := os.ReadFile(e.file)
			names := e.a.Names()
			_, _, err := run(context.Background(), f)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
			if !slices.Equal(names, e.a.Names()) {
				t.Errorf("A changed: %v, then %v", names, e.a.Names())
			}
			if after, _ := os.ReadFile(e.file); !bytes.Equal(raw, after) {
				t.Error("the file changed")
			}
		})
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFileMerge: A's authenticator joins the others, and replaces A's own.
func TestFileMerge(t *testing.T) {
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"issuer":"https://other.example","jwks_uri":"https://other.example/keys"}`))
	}))
	defer other.Close()
	otherAuth := apiserverv1.JWTAuthenticator{
		Issuer:        apiserverv1.Issuer{URL: "https://other.example", DiscoveryURL: ptr.To(other.URL + DiscoveryPath), CertificateAuthority: string(pemOf(other)), Audiences: []string{"other"}},
		ClaimMappings: apiserverv1.ClaimMappings{Username: apiserverv1.PrefixedClaimOrExpression{Claim: "sub", Prefix: ptr.To("other:")}},
	}
	tests := []struct {
		name    string
		initial func(e *bed) []apiserverv1.JWTAuthenticator
		keep    int // how many of the initial stay, in front
		warning string
	}{
		{"added to others", func(*bed) []apiserverv1.JWTAuthenticator { return []apiserverv1.JWTAuthenticator{otherAuth} }, 1, ""},
		{"A's edited entry replaced", func(e *bed) []apiserverv1.JWTAuthenticator {
			a := grant.Authenticator("cluster1", "cluster2", grant.Issuer{URL: e.issuer, DiscoveryURL: e.aSrv.URL + DiscoveryPath})
			a.ClaimMappings.Username.Expression = "claims.sub"
			return []apiserverv1.JWTAuthenticator{otherAuth, a}
		}, 1, "replacing the authenticator for issuer https://cluster1"},
		{"A's entry for a former issuer replaced", func(e *bed) []apiserverv1.JWTAuthenticator {
			return []apiserverv1.JWTAuthenticator{grant.Authenticator("cluster1", "cluster2", grant.Issuer{URL: "https://kubernetes.default.svc.cluster.local", DiscoveryURL: e.aSrv.URL + DiscoveryPath}), otherAuth}
		}, 0, "replacing the authenticator for issuer https://kubernetes.default.svc.cluster.local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBed(t)
			initial := tt.initial(e)
			b, _ := MarshalConfig(NewConfig(initial...))
			writeFile(t, e.file, string(b))
			if _, _, err := run(context.Background(), e.federate()); err != nil {
				t.Fatalf("%v\n%s", err, e.out.String())
			}
			cfg := readConfig(t, e.file)
			wantAuth := grant.Authenticator("cluster1", "cluster2", grant.Issuer{URL: e.issuer, DiscoveryURL: e.aSrv.URL + DiscoveryPath, CertificateAuthority: string(pemOf(e.aSrv)), KeyIDs: e.keys})
			want := append(slices.Clone(initial[:tt.keep]), wantAuth)
			if tt.name == "A's entry for a former issuer replaced" {
				want = []apiserverv1.JWTAuthenticator{otherAuth, wantAuth}
			}
			if !equalJSON(cfg.JWT, want) {
				got, _ := yaml.Marshal(cfg.JWT)
				t.Errorf("file:\n%s", got)
			}
			if !strings.Contains(e.out.String(), tt.warning) {
				t.Errorf("no %q in:\n%s", tt.warning, e.out.String())
			}
		})
	}
}

// TestUnreachableIssuer: an issuer B cannot fetch blocks every reload of the file: federate
// refuses to write it, naming the entry; a dry run only warns.
func TestUnreachableIssuer(t *testing.T) {
	dead := apiserverv1.JWTAuthenticator{Issuer: apiserverv1.Issuer{URL: "https://dead.example", DiscoveryURL: ptr.To("https://127.0.0.1:1" + DiscoveryPath), Audiences: []string{"x"}},
		ClaimMappings: apiserverv1.ClaimMappings{Username: apiserverv1.PrefixedClaimOrExpression{Expression: "claims.sub"}}}
	deadOfC3 := grant.Authenticator("cluster3", "cluster2", grant.Issuer{URL: "https://cluster3.example", DiscoveryURL: "https://127.0.0.1:2" + DiscoveryPath})
	for _, dryRun := range []DryRun{NoDryRun, ClientDryRun} {
		t.Run(string(dryRun), func(t *testing.T) {
			e := newBed(t)
			b, _ := MarshalConfig(NewConfig(dead, deadOfC3))
			writeFile(t, e.file, string(b))
			f := e.federate()
			f.DryRun = dryRun
			_, _, err := run(context.Background(), f)
			if after, _ := os.ReadFile(e.file); !bytes.Equal(b, after) {
				t.Error("the file changed")
			}
			msg := e.out.String()
			if err != nil {
				msg = err.Error()
			}
			for _, s := range []string{"jwt[0] issuer https://dead.example (discovery https://127.0.0.1:1/.well-known/openid-configuration)",
				"jwt[1] issuer https://cluster3.example", "kubectl mcsa unfederate cluster3 cluster2 --authentication-config " + e.file, "60 s"} {
				if !strings.Contains(msg, s) {
					t.Errorf("no %q in %s", s, msg)
				}
			}
			if dryRun == NoDryRun && (err == nil || !strings.HasPrefix(err.Error(), "refusing to write "+e.file)) {
				t.Errorf("got %v, want a refusal", err)
			}
			if dryRun != NoDryRun && err != nil {
				t.Errorf("dry run: %v", err)
			}
		})
	}
}

func TestProbeIssuer(t *testing.T) {
	serve := func(status int, body string) *httptest.Server {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}))
		s.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted client's handshake
		s.StartTLS()
		return s
	}
	for _, tt := range []struct {
		name   string
		srv    *httptest.Server
		ca     func(*httptest.Server) string
		want   string
		status int
	}{
		{"ok", serve(200, `{"issuer":"https://i","jwks_uri":"https://i/k"}`), func(s *httptest.Server) string { return string(pemOf(s)) }, "", 200},
		{"forbidden", serve(403, `{"kind":"Status"}`), func(s *httptest.Server) string { return string(pemOf(s)) }, "403 Forbidden", 403},
		{"another issuer", serve(200, `{"issuer":"https://j","jwks_uri":"https://j/k"}`), func(s *httptest.Server) string { return string(pemOf(s)) }, `names issuer "https://j"`, 200},
		{"no keys", serve(200, `{"issuer":"https://i"}`), func(s *httptest.Server) string { return string(pemOf(s)) }, "no jwks_uri", 200},
		{"not a document", serve(200, `<html>`), func(s *httptest.Server) string { return string(pemOf(s)) }, "not a discovery document", 200},
		{"untrusted certificate", serve(200, `{}`), func(*httptest.Server) string { return "" }, "certificate", 0},
		{"bad CA", serve(200, `{}`), func(*httptest.Server) string { return "nonsense" }, "no PEM certificate", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer tt.srv.Close()
			status, err := probeIssuer(context.Background(), apiserverv1.Issuer{URL: "https://i", DiscoveryURL: ptr.To(tt.srv.URL + "/d"), CertificateAuthority: tt.ca(tt.srv)}, 2*time.Second)
			if status != tt.status || (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("got %d %v, want %d %q", status, err, tt.status, tt.want)
			}
		})
	}
}

// TestWriteAtomic: the file is replaced whole, keeps its mode, through a symbolic link, and
// leaves no temporary file behind.
func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.yaml")
	link := filepath.Join(dir, "link.yaml")
	writeFile(t, target, "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt: []\n")
	if err := os.Chmod(target, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.yaml", link); err != nil {
		t.Fatal(err)
	}
	f, err := ReadConfigFile(link)
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig(grant.Authenticator("cluster1", "cluster2", grant.Issuer{URL: "https://cluster1", DiscoveryURL: "https://c1/d"}))
	if !f.Changed(cfg) || f.Changed(f.Config) {
		t.Error("Changed is wrong")
	}
	if err := f.Write(cfg); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v", err)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if got := readConfig(t, target); !equalJSON(got, cfg) {
		t.Errorf("wrote %+v", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("files left: %v", entries)
	}
	// A folder it cannot write in: an error, and the file as it was.
	if os.Getuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = os.Chmod(dir, 0o700) }() // for the cleanup
		if err := f.Write(NewConfig()); err == nil {
			t.Error("wrote in a read-only folder")
		}
		if got := readConfig(t, target); !equalJSON(got, cfg) {
			t.Error("a failed write changed the file")
		}
	}
}

// TestDryRun: nothing is written in A nor in the file, and nothing is verified.
func TestDryRun(t *testing.T) {
	for _, dryRun := range []DryRun{ClientDryRun, ServerDryRun} {
		t.Run(string(dryRun), func(t *testing.T) {
			e := newBed(t)
			e.loaded.Store(false)
			raw, _ := os.ReadFile(e.file)
			names := e.a.Names()
			f := e.federate()
			f.DryRun = dryRun
			p, results, err := run(context.Background(), f)
			if err != nil {
				t.Fatalf("%v\n%s", err, e.out.String())
			}
			want := []string{
				"clusterrolebinding/" + grant.DiscoveryBindingName + " created",
				"namespace/" + manifests.Namespace + " configured",
				"serviceaccountimport/cluster2 created",
				"configmap/" + v1alpha1.FederatedConfigMapName("cluster2") + " created",
			}
			if got := actions(results); !slices.Equal(got, want) {
				t.Errorf("results %v, want %v", got, want)
			}
			if !slices.Equal(names, e.a.Names()) {
				t.Errorf("A changed: %v, then %v", names, e.a.Names())
			}
			if after, _ := os.ReadFile(e.file); !bytes.Equal(raw, after) {
				t.Error("the file changed")
			}
			if len(p.Config.JWT) != 1 || p.FileAction != kube.Configured || !strings.Contains(e.out.String(), "would be written (dry run)") ||
				!slices.Equal(grant.AuthenticatorKeyIDs(p.Config.JWT[0]), e.keys) || !strings.Contains(e.out.String(), "publishes the keys key-1") {
				t.Errorf("plan %+v, output:\n%s", p, e.out.String())
			}
			// A server dry run knows the import's UID, so the ConfigMap has its owner.
			cm := results[3].Object
			if refs := cm.GetOwnerReferences(); (dryRun == ServerDryRun) != (len(refs) == 1) {
				t.Errorf("owner references %v", refs)
			}
		})
	}
}

// TestWithoutFile: the plan holds the authenticator alone, for the operator.
func TestWithoutFile(t *testing.T) {
	e := newBed(t)
	raw, _ := os.ReadFile(e.file)
	f := e.federate()
	f.AuthenticationConfig = ""
	e.loaded.Store(false)
	f.Wait = 0
	p, _, err := run(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if p.File != nil || len(p.Config.JWT) != 1 || p.Config.JWT[0].Issuer.URL != e.issuer || p.Config.Kind != "AuthenticationConfiguration" ||
		!slices.Equal(grant.AuthenticatorKeyIDs(p.Config.JWT[0]), e.keys) {
		t.Errorf("plan %+v", p)
	}
	if after, _ := os.ReadFile(e.file); !bytes.Equal(raw, after) {
		t.Error("the file changed")
	}
	if e.a.Object(saiGVK, manifests.Namespace, "cluster2") == nil {
		t.Error("no credential with --wait=false")
	}
}

// TestVerify: B's answers while it has not loaded the file, and the diagnosis when it never
// does; the importer's service account, else default/default.
func TestVerify(t *testing.T) {
	ctx := context.Background()
	t.Run("never accepted", func(t *testing.T) {
		e := newBed(t)
		e.loaded.Store(false)
		e.metricsStatus.Store(-1) // B's metrics do not tell whether it loaded the file
		f := e.federate()
		f.Wait = 200 * time.Millisecond
		_, _, err := run(ctx, f)
		var nv *NotVerifiedError
		if !errors.As(err, &nv) {
			t.Fatalf("got %v, want NotVerifiedError", err)
		}
		for _, s := range []string{"401 Unauthorized", "issuer https://cluster1 and audience " + v1alpha1.FederatedAudience("cluster2"),
			"reads " + e.file, "it does, from here", "jwks_uri", "Run this again to wait longer"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("no %q in %v", s, err)
			}
		}
		// Not verified, no credential: running it again resumes.
		if e.a.Object(saiGVK, manifests.Namespace, "cluster2") != nil {
			t.Error("credential written before B accepted A's tokens")
		}
		e.loaded.Store(true)
		if _, _, err := run(ctx, e.federate()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("never loaded", func(t *testing.T) {
		e := newBed(t)
		e.loaded.Store(false)
		f := e.federate()
		f.Wait = 200 * time.Millisecond
		_, _, err := run(ctx, f)
		var nv *NotVerifiedError
		if !errors.As(err, &nv) {
			t.Fatalf("got %v, want NotVerifiedError", err)
		}
		for _, s := range []string{"did not load " + e.file, "it reports having loaded sha256:0000", "reads " + e.file, "it does, from here", "Run this again to wait longer"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("no %q in %v", s, err)
			}
		}
		if e.a.Object(saiGVK, manifests.Namespace, "cluster2") != nil {
			t.Error("credential written before B loaded the file")
		}
	})
	t.Run("discovery not served", func(t *testing.T) {
		e := newBed(t)
		e.loaded.Store(false)
		f := e.federate()
		p, err := f.Plan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f.Wait = 100 * time.Millisecond
		_, err = f.Verify(ctx, p)
		if err == nil || !strings.Contains(err.Error(), "it does NOT") || !strings.Contains(err.Error(), grant.DiscoveryBindingName) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("default service account without the importer", func(t *testing.T) {
		e := newBed(t)
		if _, err := e.ac.Kube.CoreV1().ServiceAccounts(manifests.Namespace).Get(ctx, manifests.ControllerServiceAccount, metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := e.ac.Kube.CoreV1().ServiceAccounts(manifests.Namespace).Delete(ctx, manifests.ControllerServiceAccount, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		f := e.federate()
		if _, _, err := run(ctx, f); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(e.out.String(), grant.FederatedUser("cluster1", "default", "default")) {
			t.Errorf("output:\n%s", e.out.String())
		}
	})
}

// TestTokenCredentialKept: A's credential from bootstrap stays, and federated imports use it.
func TestTokenCredentialKept(t *testing.T) {
	e := newBed(t)
	e.a.Add(&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: manifests.Namespace, Name: "cluster2"},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: grant.Namespace, Name: "cluster1"}})
	_, results, err := run(context.Background(), e.federate())
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(results); len(got) != 1 {
		t.Errorf("results %v", got)
	}
	if e.a.Object(cmGVK, manifests.Namespace, v1alpha1.FederatedConfigMapName("cluster2")) != nil {
		t.Error("a ConfigMap beside the token credential")
	}
	if !strings.Contains(e.out.String(), "federated imports use its server and CA") {
		t.Errorf("output:\n%s", e.out.String())
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		f    Federate
		want string
	}{
		{"bad name", Federate{AName: "Cluster_1", BName: "cluster2"}, "pass --target-name"},
		{"same names", Federate{AName: "c", BName: "c"}, "does not federate with itself"},
		{"bad issuer server", Federate{AName: "a", BName: "b", IssuerServer: "http://a"}, "--issuer-server"},
		{"bad dry run", Federate{AName: "a", BName: "b", DryRun: "maybe"}, "dry run"},
		{"ok", Federate{AName: "a", BName: "b", IssuerServer: "https://a:6443"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// TestReadKeyIDs: A's key IDs, sorted, from the JWKS at the path of A's jwks_uri on A's API
// server (kube-apiserver's own JWKSPath when A does not serve that path); a JWKS that B's entry
// could not name is refused before anything is written.
func TestReadKeyIDs(t *testing.T) {
	for _, tt := range []struct {
		name    string
		keys    []string
		jwks    string
		jwksURI string // "" A's; %s A's server
		want    []string
		err     string
	}{
		{"one key", []string{"key-1"}, "", "", []string{"key-1"}, ""},
		{"sorted, without duplicates", []string{"zz", "Ab_-1", "zz"}, "", "", []string{"Ab_-1", "zz"}, ""},
		{"jwks_uri elsewhere: A's own keys", []string{"key-1", "key-2"}, "", "https://keys.example/cluster1/jwks.json", []string{"key-1", "key-2"}, ""},
		{"jwks_uri on another host, same path", []string{"key-1"}, "", "https://cluster1.example" + JWKSPath, []string{"key-1"}, ""},
		{"no key", nil, "", "", nil, "no key: B could verify none of its tokens"},
		{"not a JWKS", nil, "<html>", "", nil, "not a JWKS"},
		{"a key without key ID", nil, `{"keys":[{"kty":"RSA"}]}`, "", nil, `key ID ""`},
		{"a key ID B's entry could not name", nil, `{"keys":[{"kid":"a, b)"}]}`, "", nil, `key ID "a, b)"`},
		{"too large", nil, `{"keys":[` + strings.Repeat(" ", MaxJWKSSize) + `]}`, "", nil, "larger than"},
		{"not served to the user", nil, "403", "", nil, "ask a cluster admin for access"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newBed(t)
			e.keys, e.jwks, e.jwksURI = tt.keys, tt.jwks, tt.jwksURI
			raw, _ := os.ReadFile(e.file)
			p, _, err := run(context.Background(), e.federate())
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "service-account keys of context \"cluster1\" (GET "+JWKSPath+")") {
					t.Fatalf("got %v, want an error with %q", err, tt.err)
				}
				if after, _ := os.ReadFile(e.file); !bytes.Equal(raw, after) {
					t.Error("the file changed")
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, e.out.String())
			}
			if !slices.Equal(p.Issuer.KeyIDs, tt.want) || !slices.Equal(grant.AuthenticatorKeyIDs(readConfig(t, e.file).JWT[0]), tt.want) {
				t.Errorf("key IDs %v, in the file %v, want %v", p.Issuer.KeyIDs, grant.AuthenticatorKeyIDs(readConfig(t, e.file).JWT[0]), tt.want)
			}
			if want := "publishes the keys " + strings.Join(tt.want, ", "); !strings.Contains(e.out.String(), want) {
				t.Errorf("no %q in:\n%s", want, e.out.String())
			}
		})
	}
}

// TestKeyRotation: federate run again after A's keys changed rewrites B's entry with the new
// key IDs (and nothing else), and waits until B has loaded it; with the same keys it changes
// nothing, not even the file's time.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		// before are the key IDs of B's entry, written by an earlier run (nil: an entry
		// written without key IDs); keys are A's now.
		before, keys []string
		setup        func(e *bed)
		rewritten    bool
		out          []string // in federate's output
		err          string
	}{
		{"same keys", []string{"key-1"}, []string{"key-1"}, nil, false, []string{"unchanged", "has loaded"}, ""},
		{"same keys, listed in another order", []string{"key-1", "key-2"}, []string{"key-2", "key-1"}, nil, false, []string{"unchanged"}, ""},
		{"a new key published", []string{"key-1"}, []string{"key-1", "key-2"}, nil, true,
			[]string{"cluster1's keys changed since cluster2's entry was written (it named key-1)", "publishes the keys key-1, key-2", "has loaded", "cluster2 accepts cluster1's tokens"}, ""},
		{"the old key dropped", []string{"key-1", "key-2"}, []string{"key-2"}, nil, true, []string{"(it named key-1, key-2)", "has loaded"}, ""},
		{"an entry without key IDs", nil, []string{"key-1"}, nil, true, []string{"(it named (none))"}, ""},
		{"B's metrics forbidden", []string{"key-1"}, []string{"key-1", "key-2"}, func(e *bed) { e.metricsStatus.Store(http.StatusForbidden) }, true,
			[]string{"cannot tell when cluster2 loads", "Before cluster1 signs with a new key, wait until cluster2 has loaded the file", "cluster2 accepts cluster1's tokens"}, ""},
		{"B keeps its previous configuration", []string{"key-1"}, []string{"key-1", "key-2"}, func(e *bed) { e.stale.Store(true) }, true, nil, "did not load"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newBed(t)
			entry := grant.Authenticator("cluster1", "cluster2", grant.Issuer{URL: e.issuer, DiscoveryURL: e.aSrv.URL + DiscoveryPath,
				CertificateAuthority: string(pemOf(e.aSrv)), KeyIDs: tt.before})
			b, _ := MarshalConfig(NewConfig(entry))
			writeFile(t, e.file, string(b))
			before, _ := os.Stat(e.file)
			e.keys = tt.keys
			if tt.setup != nil {
				tt.setup(e)
			}
			time.Sleep(10 * time.Millisecond)
			f := e.federate()
			if tt.err != "" {
				f.Wait = 200 * time.Millisecond
			}
			p, _, err := run(ctx, f)
			if tt.err != "" {
				var nv *NotVerifiedError
				if !errors.As(err, &nv) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want NotVerifiedError with %q", err, tt.err)
				}
			} else if err != nil {
				t.Fatalf("%v\n%s", err, e.out.String())
			}
			after, _ := os.Stat(e.file)
			if rewritten := !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()); rewritten != tt.rewritten {
				t.Errorf("file rewritten: %v, want %v", rewritten, tt.rewritten)
			}
			cfg := readConfig(t, e.file)
			want := grant.Authenticator("cluster1", "cluster2", grant.Issuer{URL: e.issuer, DiscoveryURL: e.aSrv.URL + DiscoveryPath,
				CertificateAuthority: string(pemOf(e.aSrv)), KeyIDs: tt.keys})
			if len(cfg.JWT) != 1 || !equalJSON(cfg.JWT[0], want) {
				t.Errorf("file holds %+v", cfg.JWT)
			}
			// The new key IDs change the message alone: not a replaced entry.
			if len(p.Replaced) != 0 || strings.Contains(e.out.String(), "replacing the authenticator") {
				t.Errorf("replaced %v:\n%s", p.Replaced, e.out.String())
			}
			if p.KeysChanged != tt.rewritten || (tt.rewritten && !slices.Equal(p.FormerKeyIDs, tt.before)) {
				t.Errorf("keys changed %v (former %v), want %v (%v)", p.KeysChanged, p.FormerKeyIDs, tt.rewritten, tt.before)
			}
			for _, s := range tt.out {
				if !strings.Contains(e.out.String(), s) {
					t.Errorf("no %q in:\n%s", s, e.out.String())
				}
			}
		})
	}
}
