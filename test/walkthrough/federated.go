package walkthrough

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
)

// Names of the federated part.
const (
	fedNamespace = "fed"   // cluster1's namespace granted in cluster2
	fedOther     = "fed-2" // another namespace of cluster1, granted later
	fedLister    = "fed-lister"
	fedImport    = "cluster2-fed-lister"
	fedJob       = "federated-client"
)

// fedListerUser is the service account of cluster2 the federated import acts as.
var fedListerUser = v1alpha1.ServiceAccountUser(namespace, fedLister)

// Federated is the secretless mode side by side with the token mode of the parts before: cluster2
// trusts cluster1's issuer, a Job of cluster1 lists cluster2's pods as fed-lister with its own
// projected token, and nothing of cluster2 is copied into cluster1 for it.
func (w *Walkthrough) Federated(ctx context.Context) error {
	w.heading("Federated imports: no token copied")
	steps := []step{
		{"In cluster2: trust cluster1's service-account issuer (kubectl mcsa federate cluster1 cluster2)", w.federate},
		{"In cluster2: service account fed-lister, granted to namespace fed of cluster1 for listing pods only", w.allowFederated},
		{"In cluster1: the federated import, Ready when every link of the chain holds", w.importFederated},
	}
	if w.env.RealNode {
		steps = append(steps,
			step{"A Job in namespace fed lists cluster2's pods as fed-lister, with its own projected token", w.federatedJob},
			step{"Nothing copied: no secret of cluster1 holds a token of fed-lister; cluster2 minted none", w.nothingCopied},
		)
	}
	steps = append(steps,
		step{"Denied by cluster2: get (only list is granted); a namespace of cluster1 not granted", w.federatedDenied},
		step{"A grant added in cluster2 takes effect within 5 s, with nothing changed in cluster1", w.federatedGrantLater},
	)
	if w.rotating() {
		steps = append(steps, step{"Start a pod that lists cluster2's pods four times a second with a federated import of 10-minute tokens", w.startFedLoop})
	}
	return w.run(ctx, steps)
}

// FederatedRotation follows the federated client started by Federated across the kubelet's
// rotations of its projected token (at 80 % of 10 minutes: the parts in between run meanwhile),
// then disallows the grant under it. Without that client (no node, or the playground), it only
// disallows.
func (w *Walkthrough) FederatedRotation(ctx context.Context) error {
	w.heading("A federated client across the kubelet's token rotation, then disallowed")
	var steps []step
	if w.rotating() {
		steps = append(steps, step{"Wait for the kubelet to rotate the pod's token; no call fails", w.waitFedRotation})
	}
	steps = append(steps, step{"disallow --federated: calls are refused once cluster2's 10-second cache of the impersonation expires", w.federatedDisallow})
	if w.rotating() {
		steps = append(steps, step{"Stop the client", w.stopFedLoop})
	}
	return w.run(ctx, steps)
}

// rotating tells whether the scenario runs a federated client across kubelet rotations.
func (w *Walkthrough) rotating() bool { return w.env.RealNode && w.env.KubeletRotations > 0 }

// revocationLimit bounds how long cluster2 keeps allowing calls after a constrained grant is
// removed: its API server caches an allowed constrained impersonation for 10 s (measured by
// incluster/grant's TestFederationOnRealControlPlanes; the legacy verb is revoked at once).
const revocationLimit = 15 * time.Second

// Names of the federated client across rotations.
const (
	fedLoopImport = "cluster2-fed-lister-10m"
	fedLoopPod    = "fed-lister-loop"
	// fedLoopSeconds is the shortest token the kubelet projects; it replaces it after 80 %.
	fedLoopSeconds = 600
)

const fedLoopManifest = `apiVersion: v1
kind: Pod
metadata:
  name: ` + fedLoopPod + `
  namespace: ` + fedNamespace + `
  annotations:
    multicluster.admiralty.io/service-account-import.name: ` + fedLoopImport + `
spec:
  restartPolicy: Never
  containers:
  - name: generic-client
    image: ` + GenericClientImage + `
    args: [-loop, -interval=250ms]
`

// fedAudit tallies the calls of the federated client, by the ID of its own token.
func (w *Walkthrough) fedAudit() *auditReader {
	if w.fedLoopAudit == nil {
		w.fedLoopAudit = newAuditReaderFor(w.env.AuditLog, grant.FederatedUser(Cluster1, fedNamespace, "default"), "generic-client/")
	}
	return w.fedLoopAudit
}

func (w *Walkthrough) startFedLoop(ctx context.Context) error {
	if _, err := w.mcsa(ctx, "import", fedLoopImport, "--federated", "--cluster", Cluster2, "--remote-namespace", namespace,
		"--service-account", fedLister, "--ttl", fmt.Sprintf("%ds", fedLoopSeconds), "-n", fedNamespace, "--wait", "--context", Cluster1); err != nil {
		return err
	}
	w.say("$ kubectl --context cluster1 create -f - <<EOF")
	w.show(fedLoopManifest)
	w.say("EOF")
	objs, err := decode(fedLoopManifest)
	if err != nil {
		return err
	}
	if err := w.env.cl1.Create(ctx, objs[0], clientFieldOwner); err != nil {
		return err
	}
	w.fedLoopStarted = time.Now()
	audit := w.fedAudit()
	if err := waitFor(ctx, 2*time.Minute, "the federated client's calls in cluster2's audit log", func(context.Context) (bool, string) {
		if err := audit.Update(); err != nil {
			return false, err.Error()
		}
		return len(audit.Tokens()) > 0, fmt.Sprintf("%d failed calls", audit.Failed())
	}); err != nil {
		return err
	}
	w.say("The pod is running; cluster2 sees its calls with its own token %s.", audit.Tokens()[0])
	return nil
}

func (w *Walkthrough) waitFedRotation(ctx context.Context) error {
	audit := w.fedAudit()
	rotations := w.env.KubeletRotations
	// The kubelet replaces the token after 80 % of its life, at its next sync of the pod.
	limit := time.Duration(rotations)*fedLoopSeconds*time.Second*8/10 + 5*time.Minute
	if err := waitFor(ctx, limit, fmt.Sprintf("%d new token(s) of the federated client in cluster2's audit log", rotations), func(context.Context) (bool, string) {
		if err := audit.Update(); err != nil {
			return false, err.Error()
		}
		return len(audit.Tokens()) > rotations || audit.Failed() > 0, fmt.Sprintf("%d token(s) so far, %d failed calls, %s since the pod started",
			len(audit.Tokens()), audit.Failed(), round(time.Since(w.fedLoopStarted)))
	}); err != nil {
		return err
	}
	if audit.Failed() != 0 {
		return fmt.Errorf("%d calls of the federated client failed in cluster2", audit.Failed())
	}
	ids := audit.Tokens()
	for i, id := range ids {
		u := audit.Use(id)
		w.say("token %d, %s: first used %s after the pod started, %d calls", i+1, id, round(u.First.Sub(w.fedLoopStarted)), u.OK)
	}
	w.say("The kubelet rotated the pod's token %d time(s) and cluster2 saw no failed call.", len(ids)-1)
	return nil
}

func (w *Walkthrough) stopFedLoop(ctx context.Context) error {
	cs := w.env.C1.Clientset()
	w.say("$ kubectl --context cluster1 delete pod -n %s %s", fedNamespace, fedLoopPod)
	log, err := cs.CoreV1().Pods(fedNamespace).GetLogs(fedLoopPod, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return err
	}
	if err := cs.CoreV1().Pods(fedNamespace).Delete(ctx, fedLoopPod, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
	w.show(strings.Join(lines[max(0, len(lines)-2):], "\n"))
	return nil
}

func (w *Walkthrough) federate(ctx context.Context) error {
	_, err := w.mcsa(ctx, "federate", Cluster1, Cluster2,
		"--authentication-config", w.env.C2.AuthenticationConfigFile,
		"--issuer-server", w.env.C1.Server, "--source-server", w.env.C2.Server, "--timeout", "3m")
	if err != nil {
		return err
	}
	w.say("cluster2's kube-apiserver re-read its --authentication-config file (%s):\n"+
		"it now accepts cluster1's service-account tokens whose audience is %s, as users\n"+
		"cluster1:system:serviceaccount:NS:NAME.", w.env.C2.AuthenticationConfigFile, v1alpha1.FederatedAudience(Cluster2))
	return nil
}

func (w *Walkthrough) allowFederated(ctx context.Context) error {
	cs := w.env.C2.Clientset()
	meta := metav1.ObjectMeta{Name: fedLister, Namespace: namespace}
	opts := metav1.CreateOptions{FieldManager: fieldManager}
	w.say("$ kubectl --context cluster2 create serviceaccount %s   # may get, list and delete pods", fedLister)
	if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: meta}, opts); err != nil {
		return err
	}
	if _, err := cs.RbacV1().Roles(namespace).Create(ctx, &rbacv1.Role{ObjectMeta: meta,
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "delete"}}}}, opts); err != nil {
		return err
	}
	if _, err := cs.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta,
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: fedLister},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: fedLister}}}, opts); err != nil {
		return err
	}
	_, err := w.mcsa(ctx, "allow", Cluster1, namespace+"/"+fedLister, "--federated", "--into-namespaces", fedNamespace,
		"--verbs", "list", "--resources", "pods", "--context", Cluster2)
	return err
}

func (w *Walkthrough) importFederated(ctx context.Context) error {
	if err := w.env.cl1.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fedNamespace}}, clientFieldOwner); err != nil {
		return err
	}
	_, err := w.mcsa(ctx, "import", fedImport, "--federated", "--cluster", Cluster2, "--remote-namespace", namespace,
		"--service-account", fedLister, "-n", fedNamespace, "--wait", "--context", Cluster1)
	if err != nil {
		return err
	}
	out, err := w.mcsa(ctx, "get", "-n", fedNamespace, "--context", Cluster1)
	if err != nil {
		return err
	}
	if !strings.Contains(out, "True") {
		return errors.New("the federated import is not Ready")
	}
	return nil
}

const fedJobManifest = `apiVersion: batch/v1
kind: Job
metadata:
  name: ` + fedJob + `
  namespace: ` + fedNamespace + `
spec:
  template:
    metadata:
      annotations:
        multicluster.admiralty.io/service-account-import.name: ` + fedImport + `
    spec:
      restartPolicy: Never
      containers:
      - name: multicluster-client
        image: ` + MulticlusterClientImage + `
`

func (w *Walkthrough) federatedJob(ctx context.Context) error {
	w.say("$ kubectl --context cluster1 create -f - <<EOF")
	w.show(fedJobManifest)
	w.say("EOF")
	objs, err := decode(fedJobManifest)
	if err != nil {
		return err
	}
	if err := w.env.cl1.Create(ctx, objs[0], clientFieldOwner); err != nil {
		return err
	}
	job, pod, err := w.waitJobIn(ctx, fedNamespace, fedJob)
	if err != nil {
		return err
	}
	cs := w.env.C1.Clientset()
	log := finishedLogIn(ctx, cs, fedNamespace, pod.Name, "", func(log string) bool { return hasLine(log, nginx) })
	w.say("$ kubectl --context cluster1 logs -n %s job/%s", fedNamespace, fedJob)
	w.show(log)
	if job.Status.Succeeded != 1 || !hasLine(log, nginx) {
		return fmt.Errorf("job %s: %d succeeded, %d failed; log %q", fedJob, job.Status.Succeeded, job.Status.Failed, log)
	}
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == v1alpha1.VolumeName(fedImport) {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.Projected == nil || len(vol.Projected.Sources) != 2 || vol.Projected.Sources[0].ServiceAccountToken == nil {
		return fmt.Errorf("pod %s has no projected volume %s of its own token and the import's ConfigMap: %+v", pod.Name, v1alpha1.VolumeName(fedImport), vol)
	}
	tok := vol.Projected.Sources[0].ServiceAccountToken
	w.say("The pod's volume %s is projected: its own service-account token (audience %s,\n"+
		"%d s, rotated by the kubelet) and ConfigMap %s (server, ca.crt, namespace, as, config).",
		vol.Name, tok.Audience, ptr.Deref(tok.ExpirationSeconds, 0), v1alpha1.FederatedConfigMapName(fedImport))
	return nil
}

// nothingCopied checks, in cluster1, that no secret holds a token of fed-lister and, in
// cluster2's audit log, that no token of fed-lister was requested and that the calls named the
// pod's identity in cluster1 as impersonator.
func (w *Walkthrough) nothingCopied(ctx context.Context) error {
	secrets, err := w.env.C1.Clientset().CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, s := range secrets.Items {
		for k, v := range s.Data {
			if c, err := parseToken(string(v)); err == nil && c.Subject == fedListerUser {
				return fmt.Errorf("secret %s/%s holds a token of %s in key %s", s.Namespace, s.Name, fedListerUser, k)
			}
		}
	}
	calls, tokenRequests, impersonators, err := federatedAudit(w.env.AuditLog)
	if err != nil {
		return err
	}
	if tokenRequests != 0 {
		return fmt.Errorf("cluster2's audit log shows %d TokenRequests for %s", tokenRequests, fedListerUser)
	}
	want := grant.FederatedUser(Cluster1, fedNamespace, "default")
	if calls == 0 || len(impersonators) != 1 || impersonators[0] != want {
		return fmt.Errorf("cluster2's audit log: %d calls as %s, by %v; want calls by %s", calls, fedListerUser, impersonators, want)
	}
	w.say("%d secrets of cluster1 read: none holds a token of %s. cluster2's audit log: %d call(s)\n"+
		"as %s, each by %s (the pod's own identity, impersonating);\n"+
		"0 TokenRequests for %s.", len(secrets.Items), fedLister, calls, fedListerUser, want, fedLister)
	return nil
}

// federatedAudit reads cluster2's audit log: the completed calls made as fed-lister through
// impersonation, the TokenRequests for fed-lister, and who impersonated.
func federatedAudit(path string) (calls, tokenRequests int, impersonators []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, nil, err
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return 0, 0, nil, err
		}
		if ev.Stage != "ResponseComplete" {
			continue
		}
		if r := ev.ObjectRef; r != nil && r.Resource == "serviceaccounts" && r.Subresource == "token" && r.Name == fedLister {
			tokenRequests++
		}
		if ev.ImpersonatedUser != nil && ev.ImpersonatedUser.Username == fedListerUser && ev.ResponseStatus != nil && ev.ResponseStatus.Code < 300 {
			calls++
			if !seen[ev.User.Username] {
				seen[ev.User.Username] = true
				impersonators = append(impersonators, ev.User.Username)
			}
		}
	}
	return calls, tokenRequests, impersonators, sc.Err()
}

// fedClient is a client of cluster2 as a pod of namespace ns of cluster1 would be with the
// federated import: a token of its default service account with cluster2 as audience,
// impersonating fed-lister.
func (w *Walkthrough) fedClient(ctx context.Context, ns string) (kubernetes.Interface, error) {
	tr, err := w.env.C1.Clientset().CoreV1().ServiceAccounts(ns).CreateToken(ctx, "default", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{v1alpha1.FederatedAudience(Cluster2)}, ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(&rest.Config{Host: w.env.C2.Server, BearerToken: tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: w.env.C2.CAData}, Impersonate: rest.ImpersonationConfig{UserName: fedListerUser}})
}

func (w *Walkthrough) federatedDenied(ctx context.Context) error {
	fed, err := w.fedClient(ctx, fedNamespace)
	if err != nil {
		return err
	}
	if _, err := fed.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{}); err != nil {
		return fmt.Errorf("listing as a pod of %s would: %w", fedNamespace, err)
	}
	_, err = fed.CoreV1().Pods(namespace).Get(ctx, nginx, metav1.GetOptions{})
	if !apierrors.IsForbidden(err) {
		return fmt.Errorf("get pod %s as fed-lister from namespace %s: %v, want Forbidden (only list is granted)", nginx, fedNamespace, err)
	}
	w.say("get pod %s (fed-lister may, but the grant allows list only):", nginx)
	w.show(err.Error())
	if err := w.env.cl1.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fedOther}}, clientFieldOwner); err != nil {
		return err
	}
	if err := w.waitDefaultServiceAccount(ctx, fedOther); err != nil {
		return err
	}
	other, err := w.fedClient(ctx, fedOther)
	if err != nil {
		return err
	}
	_, err = other.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		return fmt.Errorf("listing from namespace %s of cluster1, not granted: %v, want Forbidden", fedOther, err)
	}
	w.say("list pods from namespace %s of cluster1, not granted:", fedOther)
	w.show(err.Error())
	return nil
}

func (w *Walkthrough) waitDefaultServiceAccount(ctx context.Context, ns string) error {
	return waitFor(ctx, time.Minute, "service account default in "+ns, func(ctx context.Context) (bool, string) {
		_, err := w.env.C1.Clientset().CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
}

// within checks that call succeeds (want) or is forbidden (!want) within limit, and says when.
func (w *Walkthrough) within(ctx context.Context, limit time.Duration, what string, want bool, call func(context.Context) error) error {
	began := time.Now()
	if err := waitFor(ctx, limit, what, func(ctx context.Context) (bool, string) {
		err := call(ctx)
		if want {
			return err == nil, fmt.Sprint(err)
		}
		return apierrors.IsForbidden(err), fmt.Sprint(err)
	}); err != nil {
		return err
	}
	w.say("%s: after %s.", what, round(time.Since(began)))
	return nil
}

func (w *Walkthrough) federatedGrantLater(ctx context.Context) error {
	if _, err := w.mcsa(ctx, "allow", Cluster1, namespace+"/"+fedLister, "--federated", "--into-namespaces", fedNamespace+","+fedOther,
		"--verbs", "list", "--resources", "pods", "--context", Cluster2); err != nil {
		return err
	}
	other, err := w.fedClient(ctx, fedOther)
	if err != nil {
		return err
	}
	return w.within(ctx, 5*time.Second, "namespace "+fedOther+" of cluster1 lists cluster2's pods", true, func(ctx context.Context) error {
		_, err := other.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		return err
	})
}

func (w *Walkthrough) federatedDisallow(ctx context.Context) error {
	fed, err := w.fedClient(ctx, fedNamespace)
	if err != nil {
		return err
	}
	if _, err := fed.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{}); err != nil {
		return err
	}
	began := time.Now()
	if _, err := w.mcsa(ctx, "disallow", Cluster1, namespace+"/"+fedLister, "--federated", "--context", Cluster2); err != nil {
		return err
	}
	if err := w.within(ctx, revocationLimit, "the next call from namespace "+fedNamespace+" is refused", false, func(ctx context.Context) error {
		_, err := fed.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		return err
	}); err != nil {
		return err
	}
	if !w.rotating() {
		return nil
	}
	// The running pod's calls: refused by cluster2 as soon.
	audit := w.fedAudit()
	return waitFor(ctx, revocationLimit, "the federated client's calls refused by cluster2", func(context.Context) (bool, string) {
		if err := audit.Update(); err != nil {
			return false, err.Error()
		}
		if audit.Failed() > 0 {
			w.say("The running pod's calls are refused %s after disallow began.", round(time.Since(began)))
			return true, ""
		}
		return false, "no refused call yet"
	})
}
