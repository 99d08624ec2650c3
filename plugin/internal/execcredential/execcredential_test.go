package execcredential

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	cpv1alpha1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	"sigs.k8s.io/cluster-inventory-api/pkg/access"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
)

// jwt is an unsigned token with the given claims (the plugin never verifies signatures).
func jwt(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","kid":"k"}`)) + "." + enc(b) + ".c2ln"
}

var t0 = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

func TestCredential(t *testing.T) {
	hour := func(iat time.Time, d time.Duration) map[string]any {
		return map[string]any{"iss": "https://b", "sub": "system:serviceaccount:default:x", "iat": iat.Unix(), "exp": iat.Add(d).Unix()}
	}
	for _, tc := range []struct {
		name    string
		token   string
		now     time.Time
		want    time.Time // zero: no expirationTimestamp
		wantErr string
	}{
		{name: "fresh 1h token: 75 % of its lifetime", token: jwt(t, hour(t0, time.Hour)), now: t0.Add(time.Minute), want: t0.Add(45 * time.Minute)},
		{name: "10 min token (the minimum): 7m30s", token: jwt(t, hour(t0, 10*time.Minute)), now: t0, want: t0.Add(450 * time.Second)},
		{name: "12h token", token: jwt(t, hour(t0, 12*time.Hour)), now: t0.Add(time.Hour), want: t0.Add(9 * time.Hour)},
		{name: "past the refresh point: retry soon", token: jwt(t, hour(t0, time.Hour)), now: t0.Add(50 * time.Minute), want: t0.Add(50*time.Minute + Retry)},
		{name: "near expiry: capped at exp minus the margin", token: jwt(t, hour(t0, time.Hour)), now: t0.Add(time.Hour - 35*time.Second), want: t0.Add(time.Hour - Margin)},
		{name: "a very short token: capped at exp minus the margin", token: jwt(t, hour(t0, 60*time.Second)), now: t0, want: t0.Add(30 * time.Second)},
		{name: "surrounding whitespace", token: "\n " + jwt(t, hour(t0, time.Hour)) + "\n", now: t0, want: t0.Add(45 * time.Minute)},
		{name: "no exp: never expires", token: jwt(t, map[string]any{"sub": "legacy"}), now: t0},
		{name: "expired", token: jwt(t, hour(t0, time.Hour)), now: t0.Add(2 * time.Hour), wantErr: "the token expired at 2026-01-02T04:00:00Z"},
		{name: "empty", token: " \n", now: t0, wantErr: "the token is empty"},
		{name: "not a JWT", token: "hello", now: t0, wantErr: "not a JWT"},
		{name: "payload not base64", token: "a.!!!.c", now: t0, wantErr: "not base64url"},
		{name: "payload not JSON", token: "a." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".c", now: t0, wantErr: "not JSON"},
		{name: "exp not a number", token: jwt(t, map[string]any{"iat": t0.Unix(), "exp": 1.5}), now: t0, wantErr: "exp claim"},
		{name: "exp without iat", token: jwt(t, map[string]any{"exp": t0.Unix()}), now: t0, wantErr: "no iat"},
		{name: "exp before iat", token: jwt(t, map[string]any{"iat": t0.Unix(), "exp": t0.Add(-time.Hour).Unix()}), now: t0, wantErr: "before it was issued"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ec, err := Credential(tc.token, tc.now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ec.APIVersion != "client.authentication.k8s.io/v1" || ec.Kind != "ExecCredential" || ec.Status.Token != strings.TrimSpace(tc.token) {
				t.Errorf("credential %+v", ec)
			}
			switch got := ec.Status.ExpirationTimestamp; {
			case tc.want.IsZero() && got != nil:
				t.Errorf("expiration %s, want none", got)
			case !tc.want.IsZero() && (got == nil || !got.Time.Equal(tc.want)):
				t.Errorf("expiration %v, want %s", got, tc.want)
			}
		})
	}
}

func TestEncodeIsWhatClientGoReads(t *testing.T) {
	ec, err := Credential(jwt(t, map[string]any{"iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix()}), t0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(ec)
	if err != nil {
		t.Fatal(err)
	}
	var back clientauthv1.ExecCredential
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"expirationTimestamp":"2026-01-02T03:45:00Z"`) || back.Status.Token != ec.Status.Token {
		t.Errorf("encoded: %s", b)
	}
}

func TestFromSecretDataAndDir(t *testing.T) {
	token := jwt(t, map[string]any{"iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix()})
	if _, err := FromSecretData(map[string][]byte{v1alpha1.SecretKeyServer: []byte("https://b")}, t0); err == nil || !strings.Contains(err.Error(), `no "token" key`) {
		t.Errorf("secret without a token: %v", err)
	}
	ec, err := FromSecretData(map[string][]byte{v1alpha1.SecretKeyToken: []byte(token)}, t0)
	if err != nil || ec.Status.Token != token {
		t.Errorf("from secret data: %v, %v", ec, err)
	}
	dir := t.TempDir()
	if _, err := FromDir(dir, t0); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing token file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, v1alpha1.SecretKeyToken), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	ec, err = FromDir(dir, t0)
	if err != nil || ec.Status.Token != token || !ec.Status.ExpirationTimestamp.Time.Equal(t0.Add(45*time.Minute)) {
		t.Errorf("from dir: %v, %v", ec, err)
	}
}

func TestParseExecInfo(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		want      *ClusterConfig
		wantErr   string
	}{
		{name: "unset", env: ""},
		{name: "no cluster (provideClusterInfo false)", env: `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}`},
		{name: "cluster without config", env: `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"cluster":{"server":"https://b"}}}`},
		{name: "import and namespace", env: `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"cluster":{"server":"https://b","config":{"import":"x","namespace":"app"}},"interactive":false}}`,
			want: &ClusterConfig{Import: "x", Namespace: "app"}},
		{name: "import only", env: `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"cluster":{"server":"https://b","config":{"import":"x"}}}}`,
			want: &ClusterConfig{Import: "x"}},
		{name: "not JSON", env: "{", wantErr: "is not an ExecCredential"},
		{name: "v1beta1", env: `{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential"}`, wantErr: "set the kubeconfig user's exec.apiVersion"},
		{name: "config of another shape", env: `{"apiVersion":"client.authentication.k8s.io/v1","spec":{"cluster":{"server":"https://b","config":["x"]}}}`, wantErr: `{"import": NAME`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseExecInfo(tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestKubeconfig(t *testing.T) {
	d := credential.Data{ClusterName: "cluster2", Server: "https://b:6443", CAData: []byte("CA"), Namespace: "default", Token: "ignored"}
	b, err := Kubeconfig(d, Exec{Command: "/usr/local/bin/kubectl-mcsa", Args: []string{"credential", "x", "-n", "app", "--context", "cluster1"}, Cluster: ClusterConfig{Import: "x", Namespace: "app"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "ignored") {
		t.Errorf("the kubeconfig holds the token:\n%s", b)
	}
	cfg, err := clientcmd.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	c, u := cfg.Clusters["cluster2"], cfg.AuthInfos["cluster2"]
	if cfg.CurrentContext != "cluster2" || c == nil || u == nil || u.Exec == nil || cfg.Contexts["cluster2"].Namespace != "default" {
		t.Fatalf("kubeconfig:\n%s", b)
	}
	if c.Server != d.Server || string(c.CertificateAuthorityData) != "CA" {
		t.Errorf("cluster %+v", c)
	}
	e := u.Exec
	if e.APIVersion != "client.authentication.k8s.io/v1" || e.Command != "/usr/local/bin/kubectl-mcsa" || strings.Join(e.Args, " ") != "credential x -n app --context cluster1" ||
		e.InteractiveMode != "Never" || !e.ProvideClusterInfo {
		t.Errorf("exec %+v", e)
	}
	// What client-go passes the plugin as spec.cluster.config.
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rc.ExecProvider == nil || rc.ExecProvider.Config == nil {
		t.Fatalf("no exec cluster config: %+v", rc.ExecProvider)
	}
	var cc ClusterConfig
	raw, err := json.Marshal(rc.ExecProvider.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cc); err != nil || cc != (ClusterConfig{Import: "x", Namespace: "app"}) {
		t.Errorf("cluster config %s: %+v, %v", raw, cc, err)
	}
	if _, err := Kubeconfig(credential.Data{ClusterName: "c"}, Exec{Command: "x"}); err == nil {
		t.Error("no server: no error")
	}
}

// TestProviderFileAsPkgAccessReadsIt: the provider file is read by the library consumers use
// (sigs.k8s.io/cluster-inventory-api/pkg/access), which, for a profile listing the kubectl-mcsa
// access provider, runs the plugin with the profile's exec extension as the cluster's config.
func TestProviderFileAsPkgAccessReadsIt(t *testing.T) {
	b, err := ProviderFile(Exec{Command: "/mcsa/kubectl-mcsa", Args: []string{"credential", "-n", "app"}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "provider.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := access.NewFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	profile := &cpv1alpha1.ClusterProfile{Status: cpv1alpha1.ClusterProfileStatus{AccessProviders: []cpv1alpha1.AccessProvider{
		{Name: "other", Cluster: clientcmdv1.Cluster{Server: "https://elsewhere"}},
		{Name: v1alpha1.AccessProviderName, Cluster: clientcmdv1.Cluster{Server: "https://cluster2:6443", CertificateAuthorityData: []byte("CA"),
			Extensions: []clientcmdv1.NamedExtension{{Name: v1alpha1.ExecExtensionKey, Extension: runtime.RawExtension{Raw: []byte(`{"import":"cluster2"}`)}}}}},
	}}}
	rc, err := cfg.BuildConfigFromCP(profile)
	if err != nil {
		t.Fatal(err)
	}
	e := rc.ExecProvider
	if rc.Host != "https://cluster2:6443" || string(rc.CAData) != "CA" || e == nil || e.Command != "/mcsa/kubectl-mcsa" ||
		strings.Join(e.Args, " ") != "credential -n app" || !e.ProvideClusterInfo || e.APIVersion != "client.authentication.k8s.io/v1" {
		t.Fatalf("rest config %+v, exec %+v", rc, e)
	}
	ext, ok := e.Config.(*runtime.Unknown)
	if !ok {
		t.Fatalf("exec config %T, want the profile's extension", e.Config)
	}
	var cc ClusterConfig
	if err := json.Unmarshal(ext.Raw, &cc); err != nil || cc != (ClusterConfig{Import: "cluster2"}) {
		t.Errorf("the plugin would get %s (%v), want the import named after the cluster", ext.Raw, err)
	}
}
