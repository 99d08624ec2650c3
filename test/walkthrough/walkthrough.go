// Package walkthrough is the getting-started guide of the original multicluster-service-account,
// run for real with kubectl-mcsa, then pushed further: tokens rotated under load, and a pod
// with imports from two clusters. TestWalkthrough runs it as a test; the playground runs it
// and leaves everything up.
//
// cluster1 is a real single-node cluster (test/node) in which `kubectl mcsa install` deploys the
// controller (importer and automount webhook) as a pod from the shipped manifests, only the image
// overridden; cluster2 and cluster3 are control planes that cluster1's pods reach at the node's
// address. Every step uses the user's tools: the kubectl-mcsa binary with the kubeconfig, and
// the original's objects, unchanged but for image names.
//
// Where no node can run, the variant without one (RealNode false) runs the same steps on three
// control planes with the controller as a local process and no pods: the checks that need a pod
// are replaced by calls from this process with the import's credential.
package walkthrough

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
)

// fieldManager names the scenario in the objects it writes, as kubectl would name itself.
const fieldManager = "kubectl-mcsa-walkthrough"

// rotations is how many times the import is rotated under load.
const rotations = 3

// Walkthrough runs the scenario in an Env, reporting each step.
type Walkthrough struct {
	env     *Env
	out     io.Writer
	n       int
	timings []Timing
	// The federated client that runs across the kubelet's rotation (FederatedRotation).
	fedLoopStarted time.Time
	fedLoopAudit   *auditReader
}

// Timing is how long a step took.
type Timing struct {
	Step   string
	Took   time.Duration
	Failed bool
}

// New prepares the scenario; out receives the report.
func New(env *Env, out io.Writer) *Walkthrough { return &Walkthrough{env: env, out: out} }

// Part is a self-contained part of the scenario; each needs the ones before.
type Part struct {
	Name string
	Run  func(context.Context) error
}

// Parts are the scenario's parts, in order.
func (w *Walkthrough) Parts() []Part {
	return []Part{
		{"getting started", w.GettingStarted},
		// Early: its client's token is rotated by the kubelet while the next parts run.
		{"federated imports", w.Federated},
		{"rotation under load", w.RotationUnderLoad},
		{"multiple imports", w.MultipleImports},
		{"federated client across the kubelet's rotation", w.FederatedRotation},
	}
}

// Run runs every part, stopping at the first failure.
func (w *Walkthrough) Run(ctx context.Context) error {
	for _, p := range w.Parts() {
		if err := p.Run(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	return nil
}

// PrintTimings writes a table of the steps' durations.
func (w *Walkthrough) PrintTimings(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	var total time.Duration
	for i, t := range w.timings {
		mark := "✓"
		if t.Failed {
			mark = "✗"
		}
		fmt.Fprintf(tw, "%s %2d. %s\t%s\n", mark, i+1, t.Step, round(t.Took))
		total += t.Took
	}
	fmt.Fprintf(tw, "    total\t%s\n", round(total))
	tw.Flush()
}

// GettingStarted is the original guide: install, bootstrap, the pod-lister in cluster2, the
// grant, the import and the Job in cluster1, then the original's three checks, what must be
// denied, and the doctor's verdict.
func (w *Walkthrough) GettingStarted(ctx context.Context) error {
	w.heading("The getting-started guide")
	steps := []step{
		{"Install kubectl-mcsa in cluster1", w.install},
		{"Let cluster1 import from cluster2: kubectl mcsa bootstrap cluster1 cluster2", w.bootstrap(Cluster2)},
		{"In cluster2: service account pod-lister, allowed to list pods, and a pod to list", w.podLister(Cluster2)},
		{"In cluster2: grant cluster1 the import of default/pod-lister", w.allow(Cluster2)},
		{"In cluster1: the ServiceAccountImport and the Job, created together", w.createGettingStarted},
		{"Check 1: the import's secret exists with its keys", w.checkSecret},
	}
	if !w.env.RealNode {
		steps[4].title = "In cluster1: the ServiceAccountImport (no Job: no node to run it)"
	}
	if w.env.RealNode {
		steps = append(steps,
			step{"Check 2: the Job's pod carries the import's volume and mounts", w.checkMounts},
			step{"Check 3: the Job succeeds and its log lists cluster2's nginx pod", w.checkJob},
			step{"Clients of the original: the mounted config, as user 1000, with its config package and kubectl", w.checkOriginalClients},
			step{"The exec credential plugin, alone in a distroless-style image, prints the mounted token", w.credentialInPod},
			step{"Denied: a pod naming a missing import; the imported identity reading secrets", w.checkDenied},
			step{"The doctor's verdict on cluster1", w.doctor},
		)
	} else {
		steps = append(steps,
			step{"Check 3, without a node: cluster2's pods listed with the import's credential", w.listWithCredential(importName, Cluster2)},
			step{"Denied: the imported identity reading secrets", w.checkDenied},
		)
	}
	return w.run(ctx, steps)
}

// RotationUnderLoad rotates the import while a pod keeps calling cluster2 with it, and proves
// from cluster2's audit log that the pod switched to each new token, and from the client's own
// count that no call failed. Without a node, it rotates and uses each new token from here.
func (w *Walkthrough) RotationUnderLoad(ctx context.Context) error {
	if !w.env.RealNode {
		w.heading("Rotation (no pod without a node: the new tokens are used from here)")
		return w.run(ctx, []step{{fmt.Sprintf("Rotate the import %d times; each new token lists cluster2's pods", rotations), w.rotateWithoutNode}})
	}
	w.heading("Rotation under load")
	audit := newAuditReader(w.env.AuditLog, "generic-client/")
	steps := []step{{"Start a pod that lists cluster2's pods four times a second (generic-client -loop)", w.startLoop(audit)}}
	for i := 1; i <= rotations; i++ {
		steps = append(steps, step{fmt.Sprintf("Rotate (%d/%d) while it runs; wait until cluster2 sees the new token", i, rotations), w.rotate(audit)})
	}
	steps = append(steps, step{"Stop the client and read its count of calls", w.stopLoop(audit)})
	return w.run(ctx, steps)
}

// MultipleImports adds cluster3 and a pod annotated with two imports that lists pods in both.
func (w *Walkthrough) MultipleImports(ctx context.Context) error {
	w.heading("A pod with imports from two clusters")
	steps := []step{
		{"In cluster3: the same pod-lister and nginx pod", w.podLister(Cluster3)},
		{"Let cluster1 import from cluster3: bootstrap, grant, import", w.importCluster3},
	}
	if w.env.RealNode {
		steps = append(steps, step{"A pod annotated with both imports lists pods in cluster2 and cluster3", w.twoClusters})
	} else {
		steps = append(steps, step{"Without a node: cluster3's pods listed with the second import's credential", w.listWithCredential(import3Name, Cluster3)})
	}
	return w.run(ctx, steps)
}

type step struct {
	title string
	fn    func(context.Context) error
}

func (w *Walkthrough) run(ctx context.Context, steps []step) error {
	for _, s := range steps {
		w.n++
		fmt.Fprintf(w.out, "\n── %d. %s\n", w.n, s.title)
		start := time.Now()
		err := s.fn(ctx)
		took := time.Since(start)
		w.timings = append(w.timings, Timing{Step: s.title, Took: took, Failed: err != nil})
		if err != nil {
			w.say("✗ failed after %s: %v", round(took), err)
			return fmt.Errorf("step %d (%s): %w", w.n, s.title, err)
		}
		w.say("✓ %s", round(took))
	}
	return nil
}

func (w *Walkthrough) heading(title string) {
	fmt.Fprintf(w.out, "\n━━━ %s ━━━\n", title)
}

// say writes an indented paragraph.
func (w *Walkthrough) say(format string, args ...any) {
	for _, line := range strings.Split(fmt.Sprintf(format, args...), "\n") {
		fmt.Fprintf(w.out, "   %s\n", line)
	}
}

// show writes a command's output, set off from the narration.
func (w *Walkthrough) show(text string) {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return
	}
	for _, line := range strings.Split(text, "\n") {
		fmt.Fprintf(w.out, "     │ %s\n", line)
	}
}

// mcsa runs `kubectl mcsa ARGS` as the user would: the plugin's binary with the kubeconfig.
func (w *Walkthrough) mcsa(ctx context.Context, args ...string) (string, error) {
	w.say("$ kubectl mcsa %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, w.env.Artifacts.Plugin(), args...)
	// The discovery cache goes with the clusters, not into the user's ~/.kube.
	cmd.Env = append(os.Environ(), "KUBECONFIG="+w.env.Kubeconfig, "KUBECACHEDIR="+filepath.Join(w.env.Dir, "kube-cache"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	w.show(out.String())
	if err != nil {
		return out.String(), fmt.Errorf("kubectl mcsa %s: %w", strings.Join(args, " "), err)
	}
	return out.String(), nil
}

func (w *Walkthrough) cluster(name string) *controlplane.Cluster {
	switch name {
	case Cluster1:
		return w.env.C1
	case Cluster2:
		return w.env.C2
	}
	return w.env.C3
}

// waitFor polls cond until it is done, generously: the machine is small and shared. On
// timeout, the error says the last state cond reported.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, string)) error {
	var state string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var done bool
		done, state = cond(ctx)
		return done, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s: %w (last: %s)", what, err, state)
	}
	return nil
}

func round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}
