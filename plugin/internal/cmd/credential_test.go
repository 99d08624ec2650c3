package cmd

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

func testJWT(iat time.Time, lifetime time.Duration) string {
	enc := base64.RawURLEncoding.EncodeToString
	b, _ := json.Marshal(map[string]any{"iat": iat.Unix(), "exp": iat.Add(lifetime).Unix(), "sub": "system:serviceaccount:default:pod-lister"})
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc(b) + ".c2ln"
}

func TestCredentialOptions(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	token := testJWT(now.Add(-time.Minute), time.Hour)
	c, connect := fakeCluster("cluster1")
	c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SecretName("x"), Namespace: "app"},
			Data: map[string][]byte{v1alpha1.SecretKeyToken: []byte(token), v1alpha1.SecretKeyServer: []byte("https://cluster2:6443")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SecretName("garbled"), Namespace: "app"},
			Data: map[string][]byte{v1alpha1.SecretKeyToken: []byte("not-a-jwt")}})
	mounts := t.TempDir()
	if err := os.MkdirAll(filepath.Join(mounts, "mounted"), 0o755); err != nil {
		t.Fatal(err)
	}
	mountedToken := testJWT(now, 10*time.Minute)
	if err := os.WriteFile(filepath.Join(mounts, "mounted", v1alpha1.SecretKeyToken), []byte(mountedToken), 0o600); err != nil {
		t.Fatal(err)
	}
	// A federated import's mount: the pod's own token, and the ConfigMap's files, `as` among them.
	c.Add(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.FederatedConfigMapName("fed"), Namespace: "app"},
		Data: map[string]string{v1alpha1.SecretKeyServer: "https://cluster2:6443", v1alpha1.KeyAs: "system:serviceaccount:apps:reader"}})
	for file, content := range map[string]string{v1alpha1.SecretKeyToken: mountedToken, v1alpha1.SecretKeyServer: "https://cluster2:6443",
		v1alpha1.KeyAs: "system:serviceaccount:apps:reader\n", v1alpha1.SecretKeyConfig: "apiVersion: v1\nkind: Config\n"} {
		if err := os.MkdirAll(filepath.Join(mounts, "fed-mounted"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mounts, "fed-mounted", file), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	execInfo := func(cfg string) string {
		return `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"cluster":{"server":"https://cluster2:6443","config":` + cfg + `},"interactive":false}}`
	}
	for _, tt := range []struct {
		name      string
		args      []string
		namespace string // -n
		env       string // KUBERNETES_EXEC_INFO
		wantToken string
		wantExp   time.Time
		wantErr   string
		noConnect bool
	}{
		{name: "secret by name and -n", args: []string{"x"}, namespace: "app", wantToken: token, wantExp: now.Add(-time.Minute + 45*time.Minute)},
		{name: "name and namespace from the exec info", env: execInfo(`{"import":"x","namespace":"app"}`), wantToken: token, wantExp: now.Add(44 * time.Minute)},
		{name: "-n wins over the exec info", args: []string{"x"}, namespace: "app", env: execInfo(`{"import":"y","namespace":"other"}`), wantToken: token},
		{name: "a ClusterProfile names the import, -n the namespace", namespace: "app", env: execInfo(`{"import":"x"}`), wantToken: token},
		{name: "mounted: no API call", args: []string{"mounted"}, wantToken: mountedToken, wantExp: now.Add(450 * time.Second), noConnect: true},
		{name: "no name", wantErr: "no import named: pass NAME"},
		{name: "bad name", args: []string{"../x"}, wantErr: "is not an import name"},
		{name: "no secret names the check", args: []string{"missing"}, namespace: "app", wantErr: "import missing has no secret missing-token in namespace app of context \"cluster1\": check it with `kubectl mcsa get missing -n app --context cluster1`"},
		{name: "garbled token", args: []string{"garbled"}, namespace: "app", wantErr: "the token is not a JWT"},
		{name: "garbled exec info", args: []string{"x"}, env: "{", wantErr: "KUBERNETES_EXEC_INFO is not an ExecCredential"},
		// Federated imports: no token of their own; an ExecCredential cannot impersonate.
		{name: "federated, mounted: refused, no API call", args: []string{"fed-mounted"}, noConnect: true,
			wantErr: "import fed-mounted mounted at " + filepath.Join(mounts, "fed-mounted") + " is federated (secretless): it has no token of its own to print, as its pods authenticate with their own service-account token and act as system:serviceaccount:apps:reader by impersonation, which an exec credential cannot carry: in a pod that mounts it, use the mounted kubeconfig " + filepath.Join(mounts, "fed-mounted", "config") + " (kubectl --kubeconfig " + filepath.Join(mounts, "fed-mounted", "config") + ", or KUBECONFIG), or in Go the library github.com/kubectl-mcsa/kubectl-mcsa/incluster/config (NamedConfigAndNamespace), which impersonate"},
		{name: "federated, from the cluster: refused", args: []string{"fed"}, namespace: "app",
			wantErr: "import fed in namespace app of context \"cluster1\" is federated (secretless): it has no token of its own to print, as its pods authenticate with their own service-account token and act as system:serviceaccount:apps:reader by impersonation, which an exec credential cannot carry: in a pod that mounts it, use the mounted kubeconfig"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			streams, _, out, errOut := genericiooptions.NewTestIOStreams()
			o := NewCredentialOptions(streams, genericclioptions.NewConfigFlags(false))
			o.now = func() time.Time { return now }
			o.getenv = func(k string) string {
				if k == "KUBERNETES_EXEC_INFO" {
					return tt.env
				}
				return ""
			}
			o.mountDir = func(name string) string { return filepath.Join(mounts, name) }
			o.namespaceFlag = func() string { return tt.namespace }
			o.connect = connect
			if tt.noConnect {
				o.connect = func() (*kube.Clients, error) { return nil, errors.New("connected") }
			}
			err := completeAndRun(t, o, func() error { return o.Complete(nil, tt.args) })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if out.Len() != 0 {
					t.Errorf("stdout on error: %q", out.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if errOut.Len() != 0 {
				t.Errorf("stderr %q: client-go shows it to the user on every refresh", errOut.String())
			}
			var ec clientauthv1.ExecCredential
			if err := json.Unmarshal(out.Bytes(), &ec); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
			if ec.APIVersion != "client.authentication.k8s.io/v1" || ec.Kind != "ExecCredential" || ec.Status == nil || ec.Status.Token != tt.wantToken {
				t.Fatalf("credential %s", out.String())
			}
			if !tt.wantExp.IsZero() && (ec.Status.ExpirationTimestamp == nil || !ec.Status.ExpirationTimestamp.Time.Equal(tt.wantExp)) {
				t.Errorf("expiration %v, want %s", ec.Status.ExpirationTimestamp, tt.wantExp)
			}
		})
	}
}

func TestCredentialProviderFile(t *testing.T) {
	for _, tt := range []struct {
		name                                     string
		args                                     []string
		execCommand, namespace, context, kubecfg string
		wantCommand, wantArgs, wantErr           string
	}{
		{name: "in a pod", execCommand: "/mcsa/kubectl-mcsa", wantCommand: "/mcsa/kubectl-mcsa", wantArgs: "credential"},
		{name: "outside, with kubectl's flags", namespace: "app", context: "cluster1", kubecfg: "/home/me/.kube/config",
			wantCommand: "kubectl-mcsa", wantArgs: "credential -n app --context cluster1 --kubeconfig /home/me/.kube/config"},
		{name: "through kubectl", execCommand: "kubectl", wantCommand: "kubectl", wantArgs: "mcsa credential"},
		{name: "no NAME", args: []string{"x"}, wantErr: "--provider-file takes no NAME"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			streams, _, out, _ := genericiooptions.NewTestIOStreams()
			o := NewCredentialOptions(streams, genericclioptions.NewConfigFlags(false))
			o.getenv = func(string) string { return "" }
			o.ProviderFile = true
			if tt.execCommand != "" {
				o.ExecCommand = tt.execCommand
			}
			o.namespaceFlag = func() string { return tt.namespace }
			o.contextFlag = func() string { return tt.context }
			o.kubeconfigFlag = func() string { return tt.kubecfg }
			o.connect = func() (*kube.Clients, error) { return nil, errors.New("connected") }
			err := completeAndRun(t, o, func() error { return o.Complete(nil, tt.args) })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var f struct {
				Providers []struct {
					Name       string
					ExecConfig struct {
						Command string
						Args    []string
					}
				}
			}
			if err := json.Unmarshal(out.Bytes(), &f); err != nil || len(f.Providers) != 1 {
				t.Fatalf("provider file (%v):\n%s", err, out.String())
			}
			p := f.Providers[0]
			if p.Name != v1alpha1.AccessProviderName || p.ExecConfig.Command != tt.wantCommand || strings.Join(p.ExecConfig.Args, " ") != tt.wantArgs {
				t.Errorf("provider %+v, want %s %s", p, tt.wantCommand, tt.wantArgs)
			}
		})
	}
	o := NewCredentialOptions(genericiooptions.NewTestIOStreamsDiscard(), genericclioptions.NewConfigFlags(false))
	o.Name, o.ExecCommand = "x", "kubectl"
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--exec-command needs --provider-file") {
		t.Errorf("--exec-command without --provider-file: %v", err)
	}
}

func TestKubeconfigExecOptions(t *testing.T) {
	c, connect := fakeCluster("cluster1")
	c.Add(&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default"},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "pod-lister"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SecretName("x"), Namespace: "default"},
			Data: map[string][]byte{"token": []byte("t0k3n"), "server": []byte("https://cluster2:6443"), "namespace": []byte("default"), "ca.crt": []byte("CA")}})
	for _, tt := range []struct {
		name, execCommand, kubeconfigFlag string
		inPath                            bool
		wantCommand                       string
		wantArgs                          string
	}{
		{name: "kubectl-mcsa in PATH", inPath: true, wantCommand: "kubectl-mcsa", wantArgs: "credential x -n default --context cluster1"},
		{name: "else this binary", wantCommand: "/opt/bin/kubectl-mcsa", wantArgs: "credential x -n default --context cluster1"},
		{name: "kubectl", execCommand: "kubectl", wantCommand: "kubectl", wantArgs: "mcsa credential x -n default --context cluster1"},
		{name: "a path and --kubeconfig", execCommand: "/usr/bin/kubectl-mcsa", kubeconfigFlag: "/home/me/.kube/config", wantCommand: "/usr/bin/kubectl-mcsa",
			wantArgs: "credential x -n default --context cluster1 --kubeconfig /home/me/.kube/config"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			streams, _, out, errOut := genericiooptions.NewTestIOStreams()
			o := NewKubeconfigOptions(streams, genericclioptions.NewConfigFlags(false))
			o.connect, o.Exec, o.ExecCommand = connect, true, tt.execCommand
			o.kubeconfigFlag = func() string { return tt.kubeconfigFlag }
			o.lookPath = func(string) (string, error) {
				if tt.inPath {
					return "/usr/local/bin/kubectl-mcsa", nil
				}
				return "", errors.New("not found")
			}
			o.executable = func() (string, error) { return "/opt/bin/kubectl-mcsa", nil }
			if err := completeAndRun(t, o, func() error { return o.Complete(nil, []string{"x"}) }); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out.String(), "t0k3n") {
				t.Errorf("the kubeconfig holds the token:\n%s", out.String())
			}
			cfg, err := clientcmd.Load(out.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			u, cl := cfg.AuthInfos["cluster2"], cfg.Clusters["cluster2"]
			if cfg.CurrentContext != "cluster2" || u == nil || u.Exec == nil || cl == nil || cl.Server != "https://cluster2:6443" || string(cl.CertificateAuthorityData) != "CA" {
				t.Fatalf("kubeconfig:\n%s", out.String())
			}
			if u.Exec.Command != tt.wantCommand || strings.Join(u.Exec.Args, " ") != tt.wantArgs || u.Exec.InteractiveMode != "Never" || !u.Exec.ProvideClusterInfo ||
				u.Exec.APIVersion != "client.authentication.k8s.io/v1" {
				t.Errorf("exec %+v", u.Exec)
			}
			if !strings.Contains(errOut.String(), "it works as long as import default/x does") {
				t.Errorf("stderr %q", errOut.String())
			}
		})
	}
	// A federated import has no secret: refused, with or without --exec.
	c.Add(&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "fed", Namespace: "default"},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "apps", Name: "reader", Mode: v1alpha1.ModeFederated}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.FederatedConfigMapName("fed"), Namespace: "default"},
			Data: map[string]string{"server": "https://cluster2:6443", "as": "system:serviceaccount:apps:reader"}})
	mounted := v1alpha1.MountPath("fed") + "/config"
	for _, tt := range []struct {
		exec    bool
		wantErr string
	}{
		{exec: false, wantErr: "import default/fed is federated (secretless): it has no secret and no token to put in a kubeconfig. Its pods present their own service-account token to cluster2 and act as system:serviceaccount:apps:reader by impersonation: in a pod that mounts it, use the mounted kubeconfig " + mounted},
		{exec: true, wantErr: "import default/fed is federated (secretless): `kubectl mcsa credential` cannot serve it, as an exec credential carries a token and never the impersonation it needs. Its pods present"},
	} {
		streams, _, out, _ := genericiooptions.NewTestIOStreams()
		o := NewKubeconfigOptions(streams, genericclioptions.NewConfigFlags(false))
		o.connect, o.Exec = connect, tt.exec
		err := completeAndRun(t, o, func() error { return o.Complete(nil, []string{"fed"}) })
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("--exec=%v: error %v, want %q", tt.exec, err, tt.wantErr)
		}
		if out.Len() != 0 {
			t.Errorf("--exec=%v: printed %s", tt.exec, out.String())
		}
	}

	streams := genericiooptions.NewTestIOStreamsDiscard()
	o := NewKubeconfigOptions(streams, genericclioptions.NewConfigFlags(false))
	o.ExecCommand = "kubectl"
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--exec-command needs --exec") {
		t.Errorf("--exec-command without --exec: %v", err)
	}
}
