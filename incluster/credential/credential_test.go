package credential

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

var sample = Data{
	ClusterName: "cluster2",
	Server:      "https://127.0.0.1:6443",
	CAData:      []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
	Namespace:   "team",
	Token:       "header.payload.signature",
}

func TestSecretData(t *testing.T) {
	noCA := sample
	noCA.CAData = nil
	tests := []struct {
		name     string
		data     Data
		wantKeys []string
	}{
		{"with CA", sample, []string{"ca.crt", "config", "namespace", "server", "token"}},
		{"system roots", noCA, []string{"config", "namespace", "server", "token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.data.SecretData("/mnt/imp")
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for k := range data {
				keys = append(keys, k)
			}
			if got, want := strings.Join(slices.Sorted(slices.Values(keys)), ","), strings.Join(tt.wantKeys, ","); got != want {
				t.Fatalf("keys = %s, want %s", got, want)
			}
			if string(data["token"]) != tt.data.Token || string(data["server"]) != tt.data.Server || string(data["namespace"]) != tt.data.Namespace {
				t.Errorf("data = %q", data)
			}
			// The kubeconfig must not embed the token: a rotated token would not reach clients.
			if strings.Contains(string(data["config"]), tt.data.Token) {
				t.Errorf("config embeds the token:\n%s", data["config"])
			}
			back := Parse(data)
			back.ClusterName = tt.data.ClusterName
			if back.Server != tt.data.Server || back.Token != tt.data.Token || back.Namespace != tt.data.Namespace || string(back.CAData) != string(tt.data.CAData) {
				t.Errorf("Parse = %+v, want %+v", back, tt.data)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Data)
		want   string
	}{
		{"no cluster name", func(d *Data) { d.ClusterName = "" }, "no cluster name"},
		{"no server", func(d *Data) { d.Server = "" }, "no server"},
		{"no token", func(d *Data) { d.Token = "" }, "no token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := sample
			tt.modify(&d)
			if _, err := d.SecretData("/mnt/imp"); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SecretData error = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestMountedKubeconfig writes the secret's files as a secret volume would and loads the config
// file the ways clients do, from another working directory: each must find the token and CA and
// send the token, and each must keep the token file as the token's source, so that it follows
// rotation.
func TestMountedKubeconfig(t *testing.T) {
	var gotAuth string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"team"}}`))
	}))
	defer srv.Close()

	d := sample
	d.Server = srv.URL
	d.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	dir := t.TempDir()
	data, err := d.SecretData(dir)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	config := filepath.Join(dir, "config")
	// Not the mount: paths relative to the working directory must not be what makes it work.
	t.Chdir(t.TempDir())

	tests := []struct {
		name string
		load func() (*rest.Config, string, error)
	}{
		{"original config package: LoadFromFile, NewDefaultClientConfig", func() (*rest.Config, string, error) {
			raw, err := clientcmd.LoadFromFile(config)
			if err != nil {
				return nil, "", err
			}
			cc := clientcmd.NewDefaultClientConfig(*raw, &clientcmd.ConfigOverrides{})
			cfg, err := cc.ClientConfig()
			if err != nil {
				return nil, "", err
			}
			ns, _, err := cc.Namespace()
			return cfg, ns, err
		}},
		{"BuildConfigFromFlags", func() (*rest.Config, string, error) {
			cfg, err := clientcmd.BuildConfigFromFlags("", config)
			return cfg, "team", err // it has no namespace; checked by the others
		}},
		{"loading rules, as kubectl --kubeconfig", func() (*rest.Config, string, error) {
			cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: config}, nil)
			cfg, err := cc.ClientConfig()
			if err != nil {
				return nil, "", err
			}
			ns, _, err := cc.Namespace()
			return cfg, ns, err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ns, err := tt.load()
			if err != nil {
				t.Fatal(err)
			}
			if ns != "team" {
				t.Errorf("namespace = %q, want team", ns)
			}
			// client-go also reads the file once into BearerToken; with BearerTokenFile set, its
			// transport rereads the file, which is what follows rotation.
			if cfg.BearerTokenFile != filepath.Join(dir, "token") {
				t.Errorf("BearerTokenFile = %q, want the token file in %s", cfg.BearerTokenFile, dir)
			}
			if cfg.Host != srv.URL {
				t.Errorf("Host = %q, want %q", cfg.Host, srv.URL)
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			gotAuth = ""
			if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "team", metav1.GetOptions{}); err != nil {
				t.Fatal(err)
			}
			if gotAuth != "Bearer "+d.Token {
				t.Errorf("Authorization = %q, want the token from the file", gotAuth)
			}
		})
	}
}

func TestMountedKubeconfigNeedsAnAbsoluteFolder(t *testing.T) {
	for _, dir := range []string{"", "imp", "./imp", "../imp"} {
		if _, err := sample.MountedKubeconfig(dir); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
			t.Errorf("MountedKubeconfig(%q) error = %v, want a refusal", dir, err)
		}
	}
}

func TestNewSecretConfigPointsAtTheMount(t *testing.T) {
	imp := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "imp", Namespace: "ns", UID: types.UID("u1")}}
	s, err := NewSecret(imp, sample)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := clientcmd.Load(s.Data["config"])
	if err != nil {
		t.Fatal(err)
	}
	user := raw.AuthInfos[raw.Contexts[raw.CurrentContext].AuthInfo]
	if want := v1alpha1.MountPath("imp") + "/token"; user.TokenFile != want {
		t.Errorf("tokenFile = %q, want %q", user.TokenFile, want)
	}
	if cluster := raw.Clusters[raw.Contexts[raw.CurrentContext].Cluster]; string(cluster.CertificateAuthorityData) != string(sample.CAData) || cluster.CertificateAuthority != "" {
		t.Errorf("cluster = %+v, want the CA inline", cluster)
	}
}

func TestInlineKubeconfig(t *testing.T) {
	b, err := sample.InlineKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BearerToken != sample.Token || cfg.BearerTokenFile != "" || string(cfg.CAData) != string(sample.CAData) || cfg.CAFile != "" || cfg.Host != sample.Server {
		t.Errorf("config = %+v, want the credential inline", cfg)
	}
	raw, err := clientcmd.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	if ctx := raw.Contexts[raw.CurrentContext]; raw.CurrentContext != "cluster2" || ctx == nil || ctx.Namespace != "team" {
		t.Errorf("current context = %q %+v, want cluster2 in namespace team", raw.CurrentContext, ctx)
	}
}

func TestNewSecret(t *testing.T) {
	imp := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "imp", Namespace: "ns", UID: types.UID("u1")}}
	s, err := NewSecret(imp, sample)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "imp-token" || s.Namespace != "ns" || s.Labels[v1alpha1.ImportNameKey] != "imp" {
		t.Errorf("secret %s/%s labels %v", s.Namespace, s.Name, s.Labels)
	}
	other := imp.DeepCopy()
	other.UID = "u2"
	tests := []struct {
		name   string
		modify func(*metav1.OwnerReference)
		imp    *v1alpha1.ServiceAccountImport
		want   bool
	}{
		{"own", func(*metav1.OwnerReference) {}, imp, true},
		{"another import of the same name", func(*metav1.OwnerReference) {}, other, false},
		{"not controller", func(r *metav1.OwnerReference) { r.Controller = nil }, imp, false},
		{"another kind", func(r *metav1.OwnerReference) { r.Kind = "Deployment" }, imp, false},
		{"another version of the API", func(r *metav1.OwnerReference) { r.APIVersion = "multicluster.admiralty.io/v1" }, imp, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := s.DeepCopy()
			tt.modify(&s.OwnerReferences[0])
			if got := OwnedBy(s, tt.imp); got != tt.want {
				t.Errorf("OwnedBy = %v, want %v", got, tt.want)
			}
		})
	}
}
