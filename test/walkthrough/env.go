package walkthrough

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/image"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/node"
)

// Images the scenario's pods run (a non-latest tag: the kubelet never tries to pull them).
const (
	ControllerImage         = "mcsa.test/mcsa-controller:e2e"
	MulticlusterClientImage = "mcsa.test/multicluster-client:e2e"
	GenericClientImage      = "mcsa.test/generic-client:e2e"
	NginxImage              = "mcsa.test/nginx:e2e"
)

// The clusters, named as their kubeconfig contexts.
const (
	Cluster1 = "cluster1"
	Cluster2 = "cluster2"
	Cluster3 = "cluster3"
)

// commands are the main packages Build compiles, by binary name, and the image each goes into
// ("" for none).
var commands = []struct{ pkg, image string }{
	{"./plugin/cmd/kubectl-mcsa", PluginImage},
	{"./incluster/cmd/mcsa-controller", ControllerImage},
	{"./incluster/examples/multicluster-client", MulticlusterClientImage},
	{"./incluster/examples/generic-client", GenericClientImage},
	{"./test/images/nginx", NginxImage},
	{"./test/images/clientcompat", ClientCompatImage},
}

// Artifacts are what Build made in a directory: binaries in bin/ and the images' tarball.
type Artifacts struct{ Dir string }

// Plugin is the kubectl-mcsa binary.
func (a Artifacts) Plugin() string { return filepath.Join(a.Dir, "bin", "kubectl-mcsa") }

// Controller is the mcsa-controller binary (run as a local process without a node).
func (a Artifacts) Controller() string { return filepath.Join(a.Dir, "bin", "mcsa-controller") }

// Images is the tarball of the pods' images.
func (a Artifacts) Images() string { return filepath.Join(a.Dir, "images.tar") }

// Check says what is missing.
func (a Artifacts) Check() error {
	for _, p := range []string{a.Plugin(), a.Controller(), a.Images()} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("walkthrough: %w (run walkthrough.Build first)", err)
		}
	}
	return nil
}

// Build compiles the plugin, the controller, the example clients, the nginx stand-in and the
// clients' compatibility check into dir/bin (one `go build`, static binaries) and packs them,
// with the test binaries' kubectl, into dir/images.tar. Run it before
// entering a node sandbox: there is no network inside to fetch modules.
func Build(ctx context.Context, dir string) (Artifacts, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Artifacts{}, err
	}
	a := Artifacts{Dir: dir}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return a, err
	}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return a, fmt.Errorf("walkthrough: go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	// No -trimpath: the packages compiled for `go test ./...` are reused, which matters on a
	// cold machine.
	args := []string{"build", "-ldflags=-s -w", "-o", bin + "/"}
	for _, c := range commands {
		args = append(args, c.pkg)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return a, fmt.Errorf("walkthrough: go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	var specs []image.Spec
	for _, c := range commands {
		if c.image != "" {
			specs = append(specs, image.Spec{Ref: c.image, Binary: filepath.Join(bin, filepath.Base(c.pkg))})
		}
	}
	// The real kubectl, from the test binaries, for the original clients' check.
	testbin, err := controlplane.BinDir()
	if err != nil {
		return a, err
	}
	specs = append(specs, image.Spec{Ref: KubectlImage, Binary: filepath.Join(testbin, "kubectl")})
	if err := image.Build(ctx, a.Images(), specs...); err != nil {
		return a, err
	}
	return a, nil
}

// Options say how to start the clusters.
type Options struct {
	// Dir receives the kubeconfig, cluster2's audit log and, without a node, the controller's
	// log. It must exist.
	Dir string
	// Artifacts come from Build.
	Artifacts Artifacts
	// RealNode runs cluster1 as a real node (inside a node sandbox: node.RunInNetns or
	// node.Sandbox); otherwise all three clusters are control planes on 127.0.0.1 and the
	// controller runs as a local process.
	RealNode bool
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
	// KubeletRotations is how many times a federated client must see the kubelet rotate its
	// token (about 8 minutes each) on the real node before the scenario disallows it: the tests
	// ask for 1 (`make soak`: 3); 0, the playground's, runs no such client.
	KubeletRotations int
}

// Env is the scenario's world: cluster1 (a real node, or a control plane), cluster2 and
// cluster3 (control planes), one admin kubeconfig with a context for each, and the plugin.
type Env struct {
	Options
	// Kubeconfig has the contexts cluster1, cluster2 and cluster3 (admin).
	Kubeconfig string
	// Node is cluster1's node, with RealNode.
	Node *node.Cluster
	// C1, C2, C3 are the control planes of cluster1, cluster2 and cluster3.
	C1, C2, C3 *controlplane.Cluster
	// AuditLog is cluster2's audit log: the calls of its pod-lister service account.
	AuditLog string

	cl1        client.Client
	controller *controlplane.Process
	stopOnce   sync.Once
	stopErr    error
}

// Start starts the clusters and writes the kubeconfig. Stop the Env afterwards, also on error.
func Start(ctx context.Context, opts Options) (*Env, error) {
	if err := opts.Artifacts.Check(); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	opts.Dir = dir
	e := &Env{Options: opts, Kubeconfig: filepath.Join(dir, "kubeconfig"), AuditLog: filepath.Join(dir, "cluster2-audit.log")}
	policy := filepath.Join(dir, "cluster2-audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return e, err
	}
	// Fresh logs, when Dir is reused (the playground's).
	for _, f := range []string{e.AuditLog, e.ControllerLog()} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return e, err
		}
	}
	address := "127.0.0.1"
	if opts.RealNode {
		// Pods reach the other clusters at the node's address.
		address = node.IP
	}
	clusterOpts := func(name string) controlplane.Options {
		o := controlplane.Options{Address: address, Log: opts.Log}
		if name == Cluster2 {
			o.APIServerFlags = []string{"--audit-policy-file=" + policy, "--audit-log-path=" + e.AuditLog}
			// Federation: cluster2 may come to trust cluster1's issuer.
			o.AuthenticationConfig = true
		}
		return o
	}
	// The control planes start together, and with cluster1's node when there is one.
	var nodeErr error
	var wg sync.WaitGroup
	planes := []string{Cluster2, Cluster3}
	if opts.RealNode {
		wg.Go(func() {
			e.Node, nodeErr = node.Start(ctx, Cluster1, node.Options{Images: []string{opts.Artifacts.Images()}, Log: opts.Log})
		})
	} else {
		planes = append([]string{Cluster1}, planes...)
	}
	cs, err := controlplane.StartEach(ctx, clusterOpts, planes...)
	wg.Wait()
	// Assigned before the errors are looked at, so that Stop stops what did start.
	if e.Node != nil {
		e.C1 = e.Node.Cluster
	}
	switch {
	case cs == nil: // StartEach failed and stopped what it had started
	case opts.RealNode:
		e.C2, e.C3 = cs[0], cs[1]
	default:
		e.C1, e.C2, e.C3 = cs[0], cs[1], cs[2]
	}
	if err := errors.Join(err, nodeErr); err != nil {
		return e, err
	}
	if err := controlplane.WriteKubeconfig(e.Kubeconfig, e.C1, e.C2, e.C3); err != nil {
		return e, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return e, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return e, err
	}
	e.cl1, err = client.New(e.C1.Config, client.Options{Scheme: scheme})
	return e, err
}

// startController runs the controller as a local process against cluster1, for the variant
// without a node: the importer only, since the API server could not call a webhook served
// here through the shipped Service.
func (e *Env) startController() (*controlplane.Process, error) {
	if e.controller != nil {
		return e.controller, nil
	}
	p, err := controlplane.StartController(controlplane.Controller{
		Binary:     e.Artifacts.Controller(),
		Kubeconfig: e.C1.Kubeconfig(),
		Dir:        e.Dir,
		Args:       []string{"--namespace=" + v1alpha1.DefaultNamespace},
	})
	if err != nil {
		return nil, err
	}
	e.controller = p
	return p, nil
}

// ControllerLog is where the local controller logs, without a node.
func (e *Env) ControllerLog() string { return filepath.Join(e.Dir, "mcsa-controller.log") }

// Stop stops the controller process and the clusters, and reports what the node could not
// undo. Safe to call more than once.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		if e.controller != nil {
			e.controller.Stop()
		}
		var wg sync.WaitGroup
		for _, c := range []*controlplane.Cluster{e.C2, e.C3} {
			if c != nil {
				wg.Add(1)
				go func() { defer wg.Done(); c.Stop() }()
			}
		}
		switch {
		case e.Node != nil:
			e.stopErr = e.Node.Stop()
		case e.C1 != nil && !e.RealNode:
			e.C1.Stop()
		}
		wg.Wait()
	})
	return e.stopErr
}

// Diagnose writes what helps understand a failure: cluster1's pods and events, the
// controller's log, and the node's kubelet log.
func (e *Env) Diagnose(ctx context.Context, w io.Writer) {
	if e.C1 == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cs := e.C1.Clientset()
	if pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err == nil {
		fmt.Fprintln(w, "cluster1 pods:")
		for _, p := range pods.Items {
			fmt.Fprintf(w, "  %s/%s on %q: %s %s\n", p.Namespace, p.Name, p.Spec.NodeName, p.Status.Phase, containerStates(&p))
		}
	}
	if events, err := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{}); err == nil {
		fmt.Fprintln(w, "cluster1 events:")
		for _, ev := range events.Items {
			fmt.Fprintf(w, "  %s %s/%s: %s %s\n", ev.InvolvedObject.Kind, ev.InvolvedObject.Namespace, ev.InvolvedObject.Name, ev.Reason, ev.Message)
		}
	}
	if e.RealNode {
		pods, err := cs.CoreV1().Pods(v1alpha1.DefaultNamespace).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, p := range pods.Items {
				log, _ := cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{TailLines: ptr.To[int64](60)}).DoRaw(ctx)
				fmt.Fprintf(w, "log of %s/%s:\n%s\n", p.Namespace, p.Name, log)
			}
		}
		if e.Node != nil {
			fmt.Fprintf(w, "kubelet log (tail):\n%s\n", e.Node.Logs("kubelet"))
		}
	} else if e.controller != nil {
		fmt.Fprintf(w, "mcsa-controller log (tail):\n%s\n", e.controller.Logs())
	}
}

func containerStates(p *corev1.Pod) string {
	var out []string
	for _, s := range p.Status.ContainerStatuses {
		switch {
		case s.State.Waiting != nil:
			out = append(out, fmt.Sprintf("%s waiting (%s: %s)", s.Name, s.State.Waiting.Reason, s.State.Waiting.Message))
		case s.State.Terminated != nil:
			out = append(out, fmt.Sprintf("%s terminated (exit %d, %s)", s.Name, s.State.Terminated.ExitCode, s.State.Terminated.Reason))
		case s.State.Running != nil:
			out = append(out, s.Name+" running")
		}
	}
	return strings.Join(out, ", ")
}
