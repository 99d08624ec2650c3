package config_test

import (
	"context"
	"fmt"
	"log"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/config"
)

// The configuration works with a mounted import, a kubeconfig context or the pod's own service
// account: build the client once, it follows token rotation.
func ExampleConfigAndNamespace() {
	cfg, ns, err := config.ConfigAndNamespace()
	if err != nil {
		log.Fatal(err)
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatal(err)
	}
	pods, err := clientset.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, pod := range pods.Items {
		fmt.Println(pod.Name)
	}
}

// The name is an import's, else a kubeconfig context's.
func ExampleNamedConfigAndNamespace() {
	cfg, ns, err := config.NamedConfigAndNamespace("cluster2")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Host, ns)
}

// A multicluster controller gets a client per mounted import and kubeconfig context.
func ExampleAllNamedConfigsAndNamespaces() {
	all, err := config.AllNamedConfigsAndNamespaces()
	if err != nil {
		log.Fatal(err)
	}
	for name, c := range all {
		fmt.Println(name, c.Config.Host, c.Namespace)
	}
}

// In a pod annotated with a single import.
func ExampleServiceAccountImportConfigAndNamespace() {
	cfg, ns, err := config.ServiceAccountImportConfigAndNamespace()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Host, ns)
}

func ExampleNamedServiceAccountImportConfigAndNamespace() {
	cfg, ns, err := config.NamedServiceAccountImportConfigAndNamespace("cluster2-default-pod-lister")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Host, ns)
}

func ExampleAllServiceAccountImportConfigsAndNamespaces() {
	all, err := config.AllServiceAccountImportConfigsAndNamespaces()
	if err != nil {
		log.Fatal(err)
	}
	for name, c := range all {
		fmt.Println(name, c.Config.Host, c.Namespace)
	}
}

// An empty context name means the current context (or, without a kubeconfig, the pod's own
// service account).
func ExampleConfigAndNamespaceForContext() {
	cfg, ns, err := config.ConfigAndNamespaceForContext("cluster1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Host, ns)
}

func ExampleConfigAndNamespaceForKubeconfigAndContext() {
	cfg, ns, err := config.ConfigAndNamespaceForKubeconfigAndContext("/etc/clusters/kubeconfig", "cluster2")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Host, ns)
}

// An empty path means the default kubeconfig (KUBECONFIG, else ~/.kube/config).
func ExampleAllContextsForKubeconfig() {
	contexts, err := config.AllContextsForKubeconfig("")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(contexts)
}

func ExampleAllServiceAccountImportNames() {
	names, err := config.AllServiceAccountImportNames()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(names)
}

func ExampleSingleServiceAccountImportName() {
	name, err := config.SingleServiceAccountImportName()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(name)
}

func ExampleServiceAccountImportMounted() {
	mounted, err := config.ServiceAccountImportMounted("cluster2-default-pod-lister")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(mounted)
}
