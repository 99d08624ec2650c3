// Command clientcompat loads the single service account import mounted in its pod the ways
// existing clients load it, and lists the pods of the import's remote namespace with each:
//
//   - "original config package": the sequence of multicluster-service-account's pkg/config,
//     clientcmd.LoadFromFile on <mount>/<import>/config, then NewDefaultClientConfig with no
//     overrides, ClientConfig and Namespace (no loading rules, so relative paths in the file
//     would resolve against the working directory);
//   - "BuildConfigFromFlags": clientcmd.BuildConfigFromFlags("", <mount>/<import>/config);
//   - "kubectl-mcsa config package": the client library's NamedServiceAccountImportConfigAndNamespace.
//
// It prints its user id and working directory, then one line per loader, `<loader>: <pod>…` or
// `<loader>: error: …`, and exits 1 if any loader failed. The compatibility test runs it as a
// non-root user from a working directory other than the mount.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/config"
)

type loader struct {
	name string
	load func(name string) (*rest.Config, string, error)
}

func configFile(name string) string {
	return filepath.Join(v1alpha1.MountPath(name), v1alpha1.SecretKeyConfig)
}

var loaders = []loader{
	{"original config package", func(name string) (*rest.Config, string, error) {
		raw, err := clientcmd.LoadFromFile(configFile(name))
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
	{"BuildConfigFromFlags", func(name string) (*rest.Config, string, error) {
		cfg, err := clientcmd.BuildConfigFromFlags("", configFile(name))
		if err != nil {
			return nil, "", err
		}
		ns, err := os.ReadFile(filepath.Join(v1alpha1.MountPath(name), v1alpha1.SecretKeyNamespace))
		return cfg, strings.TrimSpace(string(ns)), err
	}},
	{"kubectl-mcsa config package", config.NamedServiceAccountImportConfigAndNamespace},
}

func main() {
	wd, _ := os.Getwd()
	fmt.Printf("uid %d, working directory %s\n", os.Getuid(), wd)
	name, err := config.SingleServiceAccountImportName()
	if err != nil {
		fmt.Fprintf(os.Stderr, "clientcompat: %v\n", err)
		os.Exit(1)
	}
	failed := false
	for _, l := range loaders {
		pods, err := list(l, name)
		if err != nil {
			failed = true
			fmt.Printf("%s: error: %v\n", l.name, err)
			continue
		}
		fmt.Printf("%s: %s\n", l.name, strings.Join(pods, " "))
	}
	if failed {
		os.Exit(1)
	}
}

func list(l loader, name string) ([]string, error) {
	cfg, ns, err := l.load(name)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	return names, nil
}
