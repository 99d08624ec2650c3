package walkthrough

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// The original clients' check: the mounted `config` loaded as clients built before kubectl-mcsa
// load it, in a pod running as a non-root user, as the original project's own e2e test ran.
const (
	// ClientCompatImage runs test/images/clientcompat; KubectlImage runs the real kubectl.
	ClientCompatImage = "mcsa.test/clientcompat:e2e"
	KubectlImage      = "mcsa.test/kubectl:e2e"

	compatJob       = "original-clients"
	compatContainer = "clientcompat"
	kubectlName     = "kubectl"
	// compatUID is the user of the original's e2e Job (runAsUser: 1000).
	compatUID = 1000
)

// compatManifest is a Job with two containers, both non-root and in a working directory other
// than the mount: clientcompat loads the import's config with the original config package's
// sequence, BuildConfigFromFlags and the library; kubectl reads it with --kubeconfig.
var compatManifest = fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %[1]s
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations:
        %[2]s: %[3]s
    spec:
      restartPolicy: Never
      securityContext:
        runAsUser: %[4]d
        runAsNonRoot: true
      containers:
      - name: %[5]s
        image: %[6]s
        workingDir: /tmp
      - name: %[7]s
        image: %[8]s
        workingDir: /tmp
        args: [--kubeconfig, %[9]s/config, get, pods, -o, name]
        env:
        - name: HOME
          value: /tmp
`, compatJob, v1alpha1.ImportNameKey, importName, compatUID, compatContainer, ClientCompatImage,
	kubectlName, KubectlImage, v1alpha1.MountPath(importName))

// compatLoaders are the lines clientcompat prints, one per way of loading the config.
var compatLoaders = []string{"original config package", "BuildConfigFromFlags", "kubectl-mcsa config package"}

func (w *Walkthrough) checkOriginalClients(ctx context.Context) error {
	w.say("$ kubectl --context cluster1 create -f - <<EOF")
	w.show(compatManifest)
	w.say("EOF")
	objs, err := decode(compatManifest)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := w.env.cl1.Create(ctx, o, clientFieldOwner); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	job, pod, err := w.waitJob(ctx, compatJob)
	if err != nil {
		return err
	}
	cs := w.env.C1.Clientset()
	wantLines := make([]string, len(compatLoaders))
	for i, l := range compatLoaders {
		wantLines[i] = l + ": " + nginx
	}
	w.say("$ kubectl --context cluster1 logs job/%s -c %s", compatJob, compatContainer)
	compatLog := finishedLog(ctx, cs, pod.Name, compatContainer, func(log string) bool { return hasLine(log, wantLines[len(wantLines)-1]) })
	w.show(compatLog)
	w.say("$ kubectl --context cluster1 logs job/%s -c %s", compatJob, kubectlName)
	kubectlLog := finishedLog(ctx, cs, pod.Name, kubectlName, func(log string) bool { return hasLine(log, "pod/"+nginx) })
	w.show(kubectlLog)
	if job.Status.Succeeded != 1 {
		return fmt.Errorf("job %s failed: %s", compatJob, containerStates(pod))
	}
	if want := fmt.Sprintf("uid %d, working directory /tmp", compatUID); !hasLine(compatLog, want) {
		return fmt.Errorf("clientcompat did not run as user %d in /tmp (want the line %q)", compatUID, want)
	}
	for _, l := range wantLines {
		if !hasLine(compatLog, l) {
			return fmt.Errorf("clientcompat's log lacks %q", l)
		}
	}
	if !hasLine(kubectlLog, "pod/"+nginx) {
		return fmt.Errorf("kubectl --kubeconfig %s/config did not list cluster2's pod %s", v1alpha1.MountPath(importName), nginx)
	}
	w.say("As user %d, from /tmp, the mounted config worked with %s, and with kubectl.",
		compatUID, strings.Join(compatLoaders, ", "))
	return nil
}
