// Command multicluster-client lists the pods of another cluster: those in the remote namespace
// of the single service account import mounted in its pod, one name per line.
//
// It is the original project's getting-started example. Run it in a pod annotated with
// `multicluster.admiralty.io/service-account-import.name: <import>`; outside a pod, point
// MCSA_SERVICEACCOUNTIMPORTS_DIR at a folder holding the import's secret files. It exits 0 after
// listing, 1 with a message on error.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "multicluster-client: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	cfg, ns, err := config.ServiceAccountImportConfigAndNamespace()
	if err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	pods, err := clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing pods in namespace %s of %s: %w", ns, cfg.Host, err)
	}
	for _, pod := range pods.Items {
		fmt.Fprintln(out, pod.Name)
	}
	return nil
}
