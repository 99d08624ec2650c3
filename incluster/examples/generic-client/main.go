// Command generic-client lists pods, one name per line, with whatever credentials it finds
// (config.ConfigAndNamespace): the service account import mounted in its pod, else the current
// kubeconfig context, else the pod's own service account. The namespace is the one that comes
// with the credentials.
//
// With -loop it builds its client once and lists every -interval until SIGTERM or SIGINT,
// printing a line per call and, at the end, a summary:
//
//	generic-client: summary: successes=N failures=M
//
// With -all it lists with every service account import mounted in its pod
// (config.AllServiceAccountImportConfigsAndNamespaces), one "IMPORT<tab>POD" line per pod; with
// -loop each import's list counts as a call.
//
// It exits 0 when it listed (with -loop: when at least one call was made and every call
// succeeded), 1 otherwise, 2 on bad usage. Tests use the loop to check that a long-lived client survives token rotation.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/config"
)

const name = "generic-client"

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(stderr)
	loop := flags.Bool("loop", false, "keep listing every -interval until SIGTERM or SIGINT, then print a summary")
	interval := flags.Duration("interval", time.Second, "time between two lists with -loop")
	timeout := flags.Duration("timeout", 30*time.Second, "time limit of one list")
	all := flags.Bool("all", false, "list with every mounted service account import, each pod prefixed with the import's name")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() > 0 || *interval <= 0 || *timeout <= 0 {
		fmt.Fprintf(stderr, "%s: takes no arguments; -interval and -timeout must be positive\n", name)
		flags.Usage()
		return 2
	}

	// Registered before anything else, so that a SIGTERM at any point ends with a summary.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	listers, err := newListers(*all, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if !*loop {
		for _, l := range listers {
			names, err := l.list(ctx)
			if err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", name, err)
				return 1
			}
			for _, n := range names {
				if l.importName != "" {
					n = l.importName + "\t" + n
				}
				fmt.Fprintln(stdout, n)
			}
		}
		return 0
	}
	return listLoop(ctx, listers, *interval, stdout, stderr)
}

// lister lists the pods of a namespace with a client built once.
type lister struct {
	clientset *kubernetes.Clientset
	host      string
	namespace string
	timeout   time.Duration
	// importName is the import the credentials come from, with -all.
	importName string
}

// newListers builds one lister from config.ConfigAndNamespace or, with all, one per mounted
// import, sorted by import name.
func newListers(all bool, timeout time.Duration) ([]*lister, error) {
	if !all {
		cfg, ns, err := config.ConfigAndNamespace()
		if err != nil {
			return nil, err
		}
		l, err := newLister(cfg, ns, "", timeout)
		if err != nil {
			return nil, err
		}
		return []*lister{l}, nil
	}
	imports, err := config.AllServiceAccountImportConfigsAndNamespaces()
	if err != nil {
		return nil, err
	}
	if len(imports) == 0 {
		return nil, errors.New("-all: no service account import is mounted")
	}
	names := make([]string, 0, len(imports))
	for n := range imports {
		names = append(names, n)
	}
	sort.Strings(names)
	listers := make([]*lister, 0, len(names))
	for _, n := range names {
		l, err := newLister(imports[n].Config, imports[n].Namespace, n, timeout)
		if err != nil {
			return nil, err
		}
		listers = append(listers, l)
	}
	return listers, nil
}

func newLister(cfg *rest.Config, namespace, importName string, timeout time.Duration) (*lister, error) {
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &lister{clientset: clientset, host: cfg.Host, namespace: namespace, timeout: timeout, importName: importName}, nil
}

func (l *lister) list(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	pods, err := l.clientset.CoreV1().Pods(l.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing pods in namespace %s of %s: %w", l.namespace, l.host, err)
	}
	names := make([]string, 0, len(pods.Items))
	for _, pod := range pods.Items {
		names = append(names, pod.Name)
	}
	return names, nil
}

func listLoop(ctx context.Context, listers []*lister, interval time.Duration, stdout, stderr io.Writer) int {
	var successes, failures int
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		for _, l := range listers {
			names, err := l.list(ctx)
			with := ""
			if l.importName != "" {
				with = " with import " + l.importName
			}
			switch {
			case ctx.Err() != nil: // interrupted by the signal: not the server's failure
			case err != nil:
				failures++
				fmt.Fprintf(stderr, "%s: %v (successes=%d failures=%d)\n", name, err, successes, failures)
			default:
				successes++
				fmt.Fprintf(stdout, "%s: listed %d pods in namespace %s%s (successes=%d failures=%d)\n", name, len(names), l.namespace, with, successes, failures)
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(stdout, "%s: summary: successes=%d failures=%d\n", name, successes, failures)
			if failures > 0 || successes == 0 {
				return 1
			}
			return 0
		case <-ticker.C:
		}
	}
}
