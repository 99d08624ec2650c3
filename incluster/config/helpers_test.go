package config

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// writeAtomic writes files into dir the way the kubelet's atomic writer updates a secret
// volume: the content goes into a fresh `..<timestamp>` folder, a `..data_tmp` symlink to it is
// renamed over `..data`, each file is a symlink through `..data`, and then the previous
// folder and the links of removed files are deleted.
func writeAtomic(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(dir, 0o755))
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	must(err)
	for name, content := range files {
		must(os.WriteFile(filepath.Join(ts, name), content, 0o644))
	}
	tmp := filepath.Join(dir, "..data_tmp")
	must(os.Symlink(filepath.Base(ts), tmp))
	must(os.Rename(tmp, filepath.Join(dir, "..data")))
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			must(os.Symlink(filepath.Join("..data", name), link))
		}
	}
	entries, err := os.ReadDir(dir)
	must(err)
	for _, e := range entries {
		if _, kept := files[e.Name()]; !kept && !strings.HasPrefix(e.Name(), "..") {
			must(os.Remove(filepath.Join(dir, e.Name())))
		}
	}
	if old != "" {
		must(os.RemoveAll(filepath.Join(dir, old)))
	}
}

// testCA is a self-signed certificate (PEM), a valid `ca.crt`; generated once, since RSA keys
// are slow to make.
func testCA(t testing.TB) []byte {
	t.Helper()
	testCAOnce.Do(func() {
		testCAPEM, _, testCAErr = certutil.GenerateSelfSignedCertKey("ca.mcsa.test", nil, nil)
	})
	if testCAErr != nil {
		t.Fatal(testCAErr)
	}
	return testCAPEM
}

var (
	testCAOnce sync.Once
	testCAPEM  []byte
	testCAErr  error
)

// importFiles is the content of a valid import's secret.
func importFiles(ca []byte, server, namespace, token string) map[string][]byte {
	return map[string][]byte{
		v1alpha1.SecretKeyServer:    []byte(server),
		v1alpha1.SecretKeyNamespace: []byte(namespace),
		v1alpha1.SecretKeyToken:     []byte(token),
		v1alpha1.SecretKeyCACert:    ca,
		v1alpha1.SecretKeyConfig:    []byte("apiVersion: v1\nkind: Config\n"), // not read
	}
}

// federatedFiles is the content of a valid federated import's mount: the same files, token
// being the pod's own, and `as`, the remote service account to impersonate.
func federatedFiles(ca []byte, server, namespace, token, as string) map[string][]byte {
	files := importFiles(ca, server, namespace, token)
	files[v1alpha1.KeyAs] = []byte(as)
	return files
}

// testEnv isolates a test from the machine: an empty mount root, a KUBECONFIG that does not
// exist, no in-cluster environment, and in-cluster files that do not exist.
type testEnv struct {
	root       string // import mount root
	kubeconfig string // KUBECONFIG's value
	saDir      string // in-cluster service account folder
}

func newTestEnv(t *testing.T) testEnv {
	t.Helper()
	base := t.TempDir()
	e := testEnv{
		root:       filepath.Join(base, "imports"),
		kubeconfig: filepath.Join(base, "kubeconfig"),
		saDir:      filepath.Join(base, "serviceaccount"),
	}
	t.Setenv(MountRootEnv, e.root)
	t.Setenv("KUBECONFIG", e.kubeconfig)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	t.Setenv("POD_NAMESPACE", "")
	files := []*string{&inClusterTokenFile, &inClusterCAFile, &inClusterNamespaceFile}
	saved := []string{inClusterTokenFile, inClusterCAFile, inClusterNamespaceFile}
	for i, key := range []string{"token", "ca.crt", "namespace"} {
		*files[i] = filepath.Join(e.saDir, key)
	}
	t.Cleanup(func() {
		for i := range files {
			*files[i] = saved[i]
		}
	})
	return e
}

// writeKubeconfig writes a kubeconfig with a context per server (context name → server URL),
// each with a token, a namespace "ns-<context>", and current context current.
func writeKubeconfig(t testing.TB, path, current string, servers map[string]string) {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	for name, server := range servers {
		cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, InsecureSkipTLSVerify: true}
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: "token-" + name}
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "ns-" + name}
	}
	cfg.CurrentContext = current
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
}
