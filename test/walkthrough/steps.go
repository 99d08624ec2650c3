package walkthrough

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
)

// install deploys the controller: as a pod on the node, or as a local process.
func (w *Walkthrough) install(ctx context.Context) error {
	if !w.env.RealNode {
		if _, err := w.mcsa(ctx, "install", "--context", Cluster1); err != nil {
			return err
		}
		if _, err := w.env.startController(); err != nil {
			return err
		}
		w.say("cluster1 has no node, so the controller's pod cannot run: the controller runs on this machine\n"+
			"instead (the importer only; log %s). Pods naming imports would be refused, so this variant\n"+
			"creates none.", w.env.ControllerLog())
		return nil
	}
	if _, err := w.mcsa(ctx, "install", "--context", Cluster1, "--image", ControllerImage, "--wait"); err != nil {
		return err
	}
	pods, err := w.env.C1.Clientset().CoreV1().Pods(v1alpha1.DefaultNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning {
			w.say("pod %s/%s is running on node %s (image %s): the importer and the webhook,\n"+
				"reached by the API server through Service mcsa-webhook.", p.Namespace, p.Name, p.Spec.NodeName, p.Spec.Containers[0].Image)
		}
	}
	return nil
}

// bootstrap lets cluster1 import from source, and checks the address the importer got for it.
func (w *Walkthrough) bootstrap(source string) func(context.Context) error {
	return func(ctx context.Context) error {
		// --source-server: the address cluster1's pods reach source at (the node's, on the real
		// node; else loopback, where the importer runs on this host), which bootstrap requires
		// when the kubeconfig's is loopback.
		if _, err := w.mcsa(ctx, "bootstrap", Cluster1, source, "--source-server", w.cluster(source).Server); err != nil {
			return err
		}
		secret, err := w.env.C1.Clientset().CoreV1().Secrets(v1alpha1.DefaultNamespace).Get(ctx, v1alpha1.SecretName(source), metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("the credential bootstrap wrote: %w", err)
		}
		server, want := string(secret.Data[v1alpha1.SecretKeyServer]), w.cluster(source).Server
		if server != want {
			return fmt.Errorf("the credential for %s points at %s, want %s", source, server, want)
		}
		where := "the kubeconfig's address"
		if w.env.RealNode {
			where = "the node's address, which cluster1's pods reach"
		}
		w.say("cluster1's importer reaches %s at %s (%s).", source, server, where)
		return nil
	}
}

// podLister creates the original's objects in a cluster, as its kubectl commands did.
func (w *Walkthrough) podLister(name string) func(context.Context) error {
	return func(ctx context.Context) error {
		for _, c := range podListerCommands {
			w.say("$ kubectl --context %s %s", name, c)
		}
		cs := w.cluster(name).Clientset()
		sa, role, binding, pod := podListerObjects()
		opts := metav1.CreateOptions{FieldManager: fieldManager}
		if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, opts); err != nil {
			return err
		}
		if _, err := cs.RbacV1().Roles(namespace).Create(ctx, role, opts); err != nil {
			return err
		}
		if _, err := cs.RbacV1().RoleBindings(namespace).Create(ctx, binding, opts); err != nil {
			return err
		}
		if _, err := cs.CoreV1().Pods(namespace).Create(ctx, pod, opts); err != nil {
			return err
		}
		w.say("%s is a control plane without a node: pod nginx stays Pending, which is enough to be listed.", name)
		return nil
	}
}

func (w *Walkthrough) allow(source string) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := w.mcsa(ctx, "allow", Cluster1, "default/pod-lister", "--context", source)
		return err
	}
}

// createGettingStarted creates the original's manifest in cluster1 (the import only, without
// a node).
func (w *Walkthrough) createGettingStarted(ctx context.Context) error {
	manifest := gettingStarted
	if !w.env.RealNode {
		manifest, _, _ = strings.Cut(manifest, "\n---\n")
		manifest += "\n"
	}
	w.say("$ kubectl --context cluster1 create -f - <<EOF")
	w.show(manifest)
	w.say("EOF")
	objs, err := decode(manifest)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := w.env.cl1.Create(ctx, o, clientFieldOwner); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	if w.env.RealNode {
		w.say("Created together, the Job's pod may come before the importer writes the secret: the\n" +
			"webhook then admits it with a warning, and the kubelet starts it once the secret exists.")
	}
	return nil
}

// waitSecret waits for an import's secret, found by label as the original's check does.
func (w *Walkthrough) waitSecret(ctx context.Context, name string) (*corev1.Secret, error) {
	var secret *corev1.Secret
	selector := v1alpha1.ImportNameKey + "=" + name
	err := waitFor(ctx, 2*time.Minute, "the secret of import "+name, func(ctx context.Context) (bool, string) {
		l, err := w.env.C1.Clientset().CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err.Error()
		}
		if len(l.Items) != 1 {
			return false, fmt.Sprintf("%d secrets labelled %s; import: %s", len(l.Items), selector, w.importState(ctx, name))
		}
		secret = &l.Items[0]
		return true, ""
	})
	return secret, err
}

// importState is an import's Ready condition, for messages.
func (w *Walkthrough) importState(ctx context.Context, name string) string {
	sai := &v1alpha1.ServiceAccountImport{}
	if err := w.env.cl1.Get(ctx, keyOf(name), sai); err != nil {
		return err.Error()
	}
	for _, c := range sai.Status.Conditions {
		if c.Type == v1alpha1.ConditionReady {
			return fmt.Sprintf("Ready=%s %s: %s", c.Status, c.Reason, c.Message)
		}
	}
	return "no Ready condition yet"
}

func (w *Walkthrough) checkSecret(ctx context.Context) error {
	w.say("$ kubectl --context cluster1 get secret -l %s=%s", v1alpha1.ImportNameKey, importName)
	secret, err := w.waitSecret(ctx, importName)
	if err != nil {
		return err
	}
	c, err := w.describeSecret(secret, Cluster2)
	if err != nil {
		return err
	}
	w.say("The importer asked cluster2 for a token of default/pod-lister (jti %s).", c.ID)
	return nil
}

// describeSecret checks an import's secret against the remote cluster and says what it holds.
func (w *Walkthrough) describeSecret(secret *corev1.Secret, remote string) (claims, error) {
	var keys []string
	for k := range secret.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range []string{v1alpha1.SecretKeyToken, v1alpha1.SecretKeyCACert, v1alpha1.SecretKeyNamespace, v1alpha1.SecretKeyServer, v1alpha1.SecretKeyConfig} {
		if len(secret.Data[k]) == 0 {
			return claims{}, fmt.Errorf("secret %s has no %q (keys: %s)", secret.Name, k, strings.Join(keys, ", "))
		}
	}
	c := w.cluster(remote)
	if got := string(secret.Data[v1alpha1.SecretKeyServer]); got != c.Server {
		return claims{}, fmt.Errorf("secret %s: server %s, want %s", secret.Name, got, c.Server)
	}
	if got := string(secret.Data[v1alpha1.SecretKeyNamespace]); got != namespace {
		return claims{}, fmt.Errorf("secret %s: namespace %q, want %q", secret.Name, got, namespace)
	}
	if !bytes.Equal(secret.Data[v1alpha1.SecretKeyCACert], c.CAData) {
		return claims{}, fmt.Errorf("secret %s: ca.crt is not %s's CA", secret.Name, remote)
	}
	tok, err := parseToken(string(secret.Data[v1alpha1.SecretKeyToken]))
	if err != nil {
		return claims{}, fmt.Errorf("secret %s: %w", secret.Name, err)
	}
	if tok.Subject != podLister || tok.Issuer != c.Issuer {
		return claims{}, fmt.Errorf("secret %s: token of %s issued by %s, want %s by %s", secret.Name, tok.Subject, tok.Issuer, podLister, c.Issuer)
	}
	w.show(fmt.Sprintf("secret %s (owner: ServiceAccountImport %s), keys %s:\n"+
		"  token      %s of %s, expires in %s\n"+
		"  ca.crt     %s's CA\n  namespace  %s\n  server     %s\n  config     a kubeconfig reading token and ca.crt beside it",
		secret.Name, ownerName(secret), strings.Join(keys, ", "), tok.Subject, remote,
		duration.HumanDuration(time.Until(time.Unix(tok.ExpiresAt, 0))), remote, namespace, c.Server))
	return tok, nil
}

func ownerName(o metav1.Object) string {
	if ref := metav1.GetControllerOf(o); ref != nil {
		return ref.Name
	}
	return "<none>"
}

// jobPod waits for the Job's pod to be scheduled.
func (w *Walkthrough) jobPod(ctx context.Context) (*corev1.Pod, error) {
	var pod *corev1.Pod
	err := waitFor(ctx, 2*time.Minute, "the Job's pod to be scheduled", func(ctx context.Context) (bool, string) {
		l, err := w.env.C1.Clientset().CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + jobName})
		if err != nil {
			return false, err.Error()
		}
		if len(l.Items) == 0 {
			return false, "no pod yet"
		}
		pod = &l.Items[0]
		return pod.Spec.NodeName != "", "pod " + pod.Name + " not scheduled yet"
	})
	return pod, err
}

func (w *Walkthrough) checkMounts(ctx context.Context) error {
	w.say("$ kubectl --context cluster1 get pod -l %s=%s -o yaml   # volumes and volume mounts", batchv1.JobNameLabel, jobName)
	pod, err := w.jobPod(ctx)
	if err != nil {
		return err
	}
	if err := checkPodMounts(pod, importName); err != nil {
		return err
	}
	w.show(fmt.Sprintf("pod %s, created by the job controller, scheduled on %s:\n"+
		"  volume %s: secret %s\n  container %s: mounted read-only at %s",
		pod.Name, pod.Spec.NodeName, v1alpha1.VolumeName(importName), v1alpha1.SecretName(importName),
		pod.Spec.Containers[0].Name, v1alpha1.MountPath(importName)))
	_, err = w.mcsa(ctx, "mounts", pod.Name, "--context", Cluster1)
	return err
}

// checkPodMounts checks that the webhook mounted each import in every container.
func checkPodMounts(pod *corev1.Pod, imports ...string) error {
	for _, name := range imports {
		found := false
		for _, v := range pod.Spec.Volumes {
			if v.Name == v1alpha1.VolumeName(name) && v.Secret != nil && v.Secret.SecretName == v1alpha1.SecretName(name) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("pod %s has no volume %s of secret %s: the webhook did not mutate it", pod.Name, v1alpha1.VolumeName(name), v1alpha1.SecretName(name))
		}
		for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
			mounted := false
			for _, m := range c.VolumeMounts {
				if m.Name == v1alpha1.VolumeName(name) && m.MountPath == v1alpha1.MountPath(name) && m.ReadOnly {
					mounted = true
				}
			}
			if !mounted {
				return fmt.Errorf("container %s of pod %s lacks the read-only mount of %s at %s", c.Name, pod.Name, name, v1alpha1.MountPath(name))
			}
		}
	}
	return nil
}

func (w *Walkthrough) checkJob(ctx context.Context) error {
	job, pod, err := w.waitJob(ctx, jobName)
	if err != nil {
		return err
	}
	w.say("$ kubectl --context cluster1 logs job/%s", jobName)
	log := finishedLog(ctx, w.env.C1.Clientset(), pod.Name, "", func(log string) bool { return hasLine(log, nginx) })
	w.show(log)
	if job.Status.Succeeded != 1 {
		return fmt.Errorf("job %s failed (%d failed pods): %s", jobName, job.Status.Failed, containerStates(pod))
	}
	if !hasLine(log, nginx) {
		return fmt.Errorf("the Job's log does not list cluster2's pod %s", nginx)
	}
	w.say("The Job's pod, in cluster1, listed the pods of cluster2's default namespace as cluster2's\n" +
		"service account pod-lister.")
	return nil
}

// waitJob waits for a Job of cluster1 to complete or fail, and returns it with its pod (the one
// that succeeded, if the job controller had to retry).
func (w *Walkthrough) waitJob(ctx context.Context, name string) (*batchv1.Job, *corev1.Pod, error) {
	return w.waitJobIn(ctx, namespace, name)
}

// waitJobIn is waitJob for a Job of namespace ns.
func (w *Walkthrough) waitJobIn(ctx context.Context, namespace, name string) (*batchv1.Job, *corev1.Pod, error) {
	cs := w.env.C1.Clientset()
	var job *batchv1.Job
	err := waitFor(ctx, 3*time.Minute, "job "+name+" to finish", func(ctx context.Context) (bool, string) {
		var err error
		job, err = cs.BatchV1().Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range job.Status.Conditions {
			if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d active, %d failed", job.Status.Active, job.Status.Failed)
	})
	if err != nil {
		return nil, nil, err
	}
	pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
	if err != nil {
		return nil, nil, err
	}
	if len(pods.Items) == 0 {
		return nil, nil, fmt.Errorf("job %s has no pod", name)
	}
	pod := &pods.Items[0]
	for i := range pods.Items {
		if pods.Items[i].Status.Phase == corev1.PodSucceeded {
			pod = &pods.Items[i]
		}
	}
	return job, pod, nil
}

// finishedLog reads a finished pod's log (of container, or of its only one when ""), waiting a
// little for it to be complete: containerd copies a container's output to its log file
// asynchronously, so the file may lag the pod's phase. It returns what it read last.
func finishedLog(ctx context.Context, cs kubernetes.Interface, pod, container string, complete func(string) bool) string {
	return finishedLogIn(ctx, cs, namespace, pod, container, complete)
}

// finishedLogIn is finishedLog for a pod of namespace ns.
func finishedLogIn(ctx context.Context, cs kubernetes.Interface, namespace, pod, container string, complete func(string) bool) string {
	var log string
	_ = waitFor(ctx, 30*time.Second, "the log of "+pod, func(ctx context.Context) (bool, string) {
		b, err := cs.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
		if err != nil {
			return false, err.Error()
		}
		log = string(b)
		return complete(log), ""
	})
	return log
}

func hasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

// credentialClient is a client of the remote cluster with an import's credential.
func (w *Walkthrough) credentialClient(ctx context.Context, name string) (*kubernetes.Clientset, error) {
	secret, err := w.env.C1.Clientset().CoreV1().Secrets(namespace).Get(ctx, v1alpha1.SecretName(name), metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(credential.Parse(secret.Data).RESTConfig())
}

// listWithCredential lists a remote cluster's pods from here with an import's credential, as
// a pod with the import mounted would.
func (w *Walkthrough) listWithCredential(name, remote string) func(context.Context) error {
	return func(ctx context.Context) error {
		if name == import3Name {
			if _, err := w.waitSecret(ctx, name); err != nil {
				return err
			}
		}
		w.say("$ kubectl mcsa kubeconfig %s --context cluster1 > remote.kubeconfig", name)
		w.say("$ kubectl --kubeconfig remote.kubeconfig get pods")
		cs, err := w.credentialClient(ctx, name)
		if err != nil {
			return err
		}
		pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("listing %s's pods with import %s: %w", remote, name, err)
		}
		var names []string
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
		w.show(strings.Join(names, "\n"))
		if !hasLine(strings.Join(names, "\n"), nginx) {
			return fmt.Errorf("%s's pod %s not listed", remote, nginx)
		}
		return nil
	}
}

// checkDenied proves what must fail: the webhook refuses a pod naming an import that does not
// exist (through the real path: API server, Service, kube-proxy, the controller's pod), and
// the imported identity may list pods in cluster2, nothing more.
func (w *Walkthrough) checkDenied(ctx context.Context) error {
	if w.env.RealNode {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "no-such-import", Namespace: namespace,
				Annotations: map[string]string{v1alpha1.ImportNameKey: "cluster2-default-nobody"}},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "client", Image: MulticlusterClientImage}}},
		}
		w.say("$ kubectl --context cluster1 run no-such-import --image %s \\\n    --annotations %s=cluster2-default-nobody", MulticlusterClientImage, v1alpha1.ImportNameKey)
		_, err := w.env.C1.Clientset().CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{FieldManager: fieldManager})
		if err == nil {
			return errors.New("a pod naming a missing import was admitted")
		}
		w.show(err.Error())
		if !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "kubectl mcsa import") {
			return fmt.Errorf("the refusal does not say what is missing and how to fix it: %w", err)
		}
	}
	cs, err := w.credentialClient(ctx, importName)
	if err != nil {
		return err
	}
	w.say("$ kubectl --kubeconfig <(kubectl mcsa kubeconfig %s) get secrets", importName)
	_, err = cs.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		return fmt.Errorf("the imported identity listing secrets in cluster2: %v, want Forbidden", err)
	}
	w.show(err.Error())
	return nil
}

func (w *Walkthrough) doctor(ctx context.Context) error {
	out, err := w.mcsa(ctx, "doctor", "--context", Cluster1)
	if err != nil {
		return err
	}
	if strings.Contains(out, "✗") {
		return errors.New("the doctor found a problem")
	}
	return nil
}

// currentToken reads the import's token from its secret.
func (w *Walkthrough) currentToken(ctx context.Context) (claims, error) {
	secret, err := w.env.C1.Clientset().CoreV1().Secrets(namespace).Get(ctx, v1alpha1.SecretName(importName), metav1.GetOptions{})
	if err != nil {
		return claims{}, err
	}
	return parseToken(string(secret.Data[v1alpha1.SecretKeyToken]))
}

// waitTokenUsed waits until cluster2's audit log shows a successful call of the client with
// token jti.
func (w *Walkthrough) waitTokenUsed(ctx context.Context, audit *auditReader, jti string) (tokenUse, error) {
	var use tokenUse
	err := waitFor(ctx, 2*time.Minute, "a call of the client with token "+jti+" in cluster2's audit log", func(context.Context) (bool, string) {
		if err := audit.Update(); err != nil {
			return false, err.Error()
		}
		use = audit.Use(jti)
		return use.OK > 0, fmt.Sprintf("%d failed calls", audit.Failed())
	})
	return use, err
}

func (w *Walkthrough) startLoop(audit *auditReader) func(context.Context) error {
	return func(ctx context.Context) error {
		w.say("$ kubectl --context cluster1 create -f - <<EOF")
		w.show(loopManifest)
		w.say("EOF")
		objs, err := decode(loopManifest)
		if err != nil {
			return err
		}
		if err := w.env.cl1.Create(ctx, objs[0], clientFieldOwner); err != nil {
			return err
		}
		if err := w.waitPodLog(ctx, loopPod, "generic-client: listed"); err != nil {
			return err
		}
		tok, err := w.currentToken(ctx)
		if err != nil {
			return err
		}
		if _, err := w.waitTokenUsed(ctx, audit, tok.ID); err != nil {
			return err
		}
		w.say("The pod is running; cluster2's audit log shows its calls as pod-lister with token %s.", tok.ID)
		return nil
	}
}

// waitPodLog waits until a pod's log has a line starting with prefix.
func (w *Walkthrough) waitPodLog(ctx context.Context, pod, prefix string) error {
	cs := w.env.C1.Clientset()
	return waitFor(ctx, 2*time.Minute, "pod "+pod+" logging "+prefix, func(ctx context.Context) (bool, string) {
		p, err := cs.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if p.Status.Phase != corev1.PodRunning {
			return false, fmt.Sprintf("pod %s: %s %s", pod, p.Status.Phase, containerStates(p))
		}
		log, err := cs.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{TailLines: ptr.To[int64](20)}).DoRaw(ctx)
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(string(log), "\n"+prefix) || strings.HasPrefix(string(log), prefix), "log: " + lastLine(string(log))
	})
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func (w *Walkthrough) rotate(audit *auditReader) func(context.Context) error {
	return func(ctx context.Context) error {
		before, err := w.currentToken(ctx)
		if err != nil {
			return err
		}
		requested := time.Now()
		if _, err := w.mcsa(ctx, "rotate", importName, "--wait", "--context", Cluster1); err != nil {
			return err
		}
		after, err := w.currentToken(ctx)
		if err != nil {
			return err
		}
		if after.ID == before.ID {
			return fmt.Errorf("the secret still holds token %s after the rotation", before.ID)
		}
		use, err := w.waitTokenUsed(ctx, audit, after.ID)
		if err != nil {
			return err
		}
		if err := audit.Update(); err != nil {
			return err
		}
		w.say("New token %s in the secret. The kubelet updated the pod's mounted file and the\n"+
			"client read it: cluster2 saw its first call with the new token %s after `rotate` began.\n"+
			"(Before, it made %d calls with the previous token, which stays valid until it expires.)",
			after.ID, round(use.First.Sub(requested)), audit.Use(before.ID).OK)
		return nil
	}
}

// stopLoop deletes the client's pod, as a rollout would, and reads the summary it prints on
// SIGTERM: its own count of calls.
func (w *Walkthrough) stopLoop(audit *auditReader) func(context.Context) error {
	return func(ctx context.Context) error {
		cs := w.env.C1.Clientset()
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		// Following the log from before the deletion catches the summary printed at the end.
		stream, err := cs.CoreV1().Pods(namespace).GetLogs(loopPod, &corev1.PodLogOptions{Follow: true}).Stream(ctx)
		if err != nil {
			return err
		}
		defer stream.Close()
		logged := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(stream)
			logged <- b
		}()
		w.say("$ kubectl --context cluster1 delete pod %s   # SIGTERM: the client prints its count", loopPod)
		if err := cs.CoreV1().Pods(namespace).Delete(ctx, loopPod, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](30)}); err != nil {
			return err
		}
		var log []byte
		select {
		case log = <-logged:
		case <-ctx.Done():
			return fmt.Errorf("the client's log did not end: %w", ctx.Err())
		}
		lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
		w.show(strings.Join(lines[max(0, len(lines)-3):], "\n"))
		successes, failures, err := parseSummary(string(log))
		if err != nil {
			return err
		}
		if err := audit.Update(); err != nil {
			return err
		}
		if failures != 0 || successes == 0 || audit.Failed() != 0 {
			return fmt.Errorf("the client counted %d successful and %d failed calls; cluster2 logged %d failed ones", successes, failures, audit.Failed())
		}
		w.say("%d calls to cluster2 over %d rotations, none failed (cluster2's audit log agrees: no failed call).", successes, rotations)
		return nil
	}
}

// rotateWithoutNode rotates the import and uses each new token from here.
func (w *Walkthrough) rotateWithoutNode(ctx context.Context) error {
	seen := map[string]bool{}
	tok, err := w.currentToken(ctx)
	if err != nil {
		return err
	}
	seen[tok.ID] = true
	for i := 1; i <= rotations; i++ {
		if _, err := w.mcsa(ctx, "rotate", importName, "--wait", "--context", Cluster1); err != nil {
			return err
		}
		tok, err := w.currentToken(ctx)
		if err != nil {
			return err
		}
		if seen[tok.ID] {
			return fmt.Errorf("rotation %d: the secret holds token %s again", i, tok.ID)
		}
		seen[tok.ID] = true
		cs, err := w.credentialClient(ctx, importName)
		if err != nil {
			return err
		}
		if _, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{}); err != nil {
			return fmt.Errorf("listing with the token of rotation %d: %w", i, err)
		}
		w.say("token %s lists cluster2's pods", tok.ID)
	}
	return nil
}

func (w *Walkthrough) importCluster3(ctx context.Context) error {
	if err := w.bootstrap(Cluster3)(ctx); err != nil {
		return err
	}
	if err := w.allow(Cluster3)(ctx); err != nil {
		return err
	}
	_, err := w.mcsa(ctx, "import", "cluster3/default/pod-lister", "--context", Cluster1, "--wait")
	return err
}

func (w *Walkthrough) twoClusters(ctx context.Context) error {
	w.say("$ kubectl --context cluster1 create -f - <<EOF")
	w.show(twoManifest)
	w.say("EOF")
	objs, err := decode(twoManifest)
	if err != nil {
		return err
	}
	if err := w.env.cl1.Create(ctx, objs[0], clientFieldOwner); err != nil {
		return err
	}
	cs := w.env.C1.Clientset()
	var pod *corev1.Pod
	err = waitFor(ctx, 2*time.Minute, "pod "+twoPod+" to finish", func(ctx context.Context) (bool, string) {
		pod, err = cs.CoreV1().Pods(namespace).Get(ctx, twoPod, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed, fmt.Sprintf("%s %s", pod.Status.Phase, containerStates(pod))
	})
	if err != nil {
		return err
	}
	if err := checkPodMounts(pod, importName, import3Name); err != nil {
		return err
	}
	w.say("$ kubectl --context cluster1 logs %s", twoPod)
	wants := []string{importName + "\t" + nginx, import3Name + "\t" + nginx}
	log := finishedLog(ctx, cs, twoPod, "", func(log string) bool { return hasLine(log, wants[0]) && hasLine(log, wants[1]) })
	w.show(log)
	if pod.Status.Phase != corev1.PodSucceeded {
		return fmt.Errorf("pod %s failed: %s", twoPod, containerStates(pod))
	}
	for _, want := range wants {
		if !hasLine(log, want) {
			return fmt.Errorf("the log lacks %q", want)
		}
	}
	if _, err := w.mcsa(ctx, "mounts", twoPod, "--context", Cluster1); err != nil {
		return err
	}
	w.say("One pod, two imports: it listed pods in cluster2 as cluster2's pod-lister and in cluster3\n" +
		"as cluster3's.")
	return nil
}
