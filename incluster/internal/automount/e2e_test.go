package automount_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/internal/automount"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/internal/servingcert"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

const (
	controllerNamespace = v1alpha1.DefaultNamespace
	controllerUser      = "system:serviceaccount:" + controllerNamespace + ":" + manifests.ControllerServiceAccount
	team                = "team"
	installer           = "e2e-installer"
)

// env is one real cluster with the webhook's manifests applied and the webhook served from
// this process on loopback, as the controller's service account.
type env struct {
	t       *testing.T
	admin   *kubernetes.Clientset
	cl      client.Client // admin, for server-side apply
	config  *rest.Config  // admin
	asSA    *rest.Config  // the controller's service account
	port    int           // webhook
	probe   int           // readiness
	logs    *logView
	webhook *admissionregistrationv1.MutatingWebhookConfiguration // as shipped, with a loopback URL
	stop    func()
}

// TestEndToEnd registers the shipped MutatingWebhookConfiguration in a real kube-apiserver,
// pointing at the webhook served on loopback, and checks what users and operators see.
func TestEndToEnd(t *testing.T) {
	const cluster = "automount"
	f := fixture.ForTest(t, fixture.Options{Clusters: []string{cluster}, CRD: []string{cluster}})
	e := setup(t, f.Cluster(cluster))
	ctx := context.Background()

	t.Run("ready only once the CA bundle is injected", func(t *testing.T) {
		// setup started the webhook before registering it: it must not have been ready then.
		if !strings.Contains(e.logs.String(), "MutatingWebhookConfiguration mcsa-automount not found") {
			t.Error("the webhook did not report the missing registration")
		}
		e.waitReady(t)
		secret, err := e.admin.CoreV1().Secrets(controllerNamespace).Get(ctx, manifests.ServingCertSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mwc := e.registration(t)
		if got := mwc.Webhooks[0].ClientConfig.CABundle; len(got) == 0 || !bytes.Equal(got, secret.Data[servingcert.KeyCABundle]) {
			t.Fatalf("caBundle %q is not the Secret's CA bundle", got)
		}
		// Re-applying the shipped manifest, as an upgrade does, keeps the injected bundle.
		e.apply(t, e.webhook)
		if again := e.registration(t); !bytes.Equal(again.Webhooks[0].ClientConfig.CABundle, secret.Data[servingcert.KeyCABundle]) {
			t.Fatal("re-applying the manifest wiped the caBundle")
		}
	})

	ready := e.createImport(t, team, "cluster2-default-pod-lister", true)
	e.createImport(t, team, "pending", false)
	e.createImport(t, "other", "elsewhere", true)

	t.Run("annotated pod is mutated", func(t *testing.T) {
		pod, warnings, err := e.createPod(t, team, annotatedPod(" cluster2-default-pod-lister, ,cluster2-default-pod-lister"))
		if err != nil {
			t.Fatal(err)
		}
		assertMounted(t, pod, ready.Name)
		if len(warnings) > 0 {
			t.Errorf("unexpected warnings %q", warnings)
		}
	})

	t.Run("import whose secret is not written yet: admitted with a warning", func(t *testing.T) {
		pod, warnings, err := e.createPod(t, team, annotatedPod("cluster2-default-pod-lister,pending"))
		if err != nil {
			t.Fatal(err)
		}
		assertMounted(t, pod, ready.Name, "pending")
		if w := strings.Join(warnings, "\n"); !strings.Contains(w, `ServiceAccountImport "pending" has no secret "pending-token" yet`) {
			t.Errorf("warnings %q lack the pending import", w)
		}
	})

	t.Run("federated import: the pod's own token for the remote cluster, and the importer's ConfigMap", func(t *testing.T) {
		fed := e.createFederatedImport(t, team, "cluster2-default-pod-lister-federated", ptr.To[int64](1200))
		p := annotatedPod(ready.Name + "," + fed.Name)
		// The pod's own service account token is not mounted: the federated import's is, for
		// the remote cluster only.
		p.Spec.AutomountServiceAccountToken = ptr.To(false)
		pod, warnings, err := e.createPod(t, team, p)
		if err != nil {
			t.Fatal(err)
		}
		assertMounted(t, pod, ready.Name)
		assertFederatedMounted(t, pod, fed.Name, v1alpha1.FederatedAudience("cluster2"), 1200)
		if len(warnings) > 0 {
			t.Errorf("unexpected warnings %q", warnings)
		}
		// The ConfigMap was checked, not skipped for want of a right to read it.
		if strings.Contains(e.logs.String(), "Checking the ConfigMap of a ServiceAccountImport") {
			t.Error("the webhook could not check the import's ConfigMap")
		}
	})

	t.Run("denied", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			pod  *corev1.Pod
			want []string
		}{
			{
				name: "missing import", pod: annotatedPod("cluster2-default-pod-lister,missing"),
				want: []string{`ServiceAccountImport "missing" not found in namespace "team"`,
					"kubectl mcsa import missing --cluster CLUSTER --remote-namespace NS --service-account SA -n team"},
			},
			{name: "import of another namespace", pod: annotatedPod("elsewhere"), want: []string{`"elsewhere" not found in namespace "team"`}},
			{name: "namespace-qualified import", pod: annotatedPod("other/elsewhere"), want: []string{`"other/elsewhere"`, "own namespace"}},
			{
				name: "volume in the way",
				pod: func() *corev1.Pod {
					p := annotatedPod("cluster2-default-pod-lister")
					p.Spec.Volumes = []corev1.Volume{{Name: v1alpha1.VolumeName(ready.Name), VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
					return p
				}(),
				want: []string{`already has a volume named "mcsa-cluster2-default-pod-lister"`},
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, _, err := e.createPod(t, team, tc.pod)
				if !apierrors.IsForbidden(err) {
					t.Fatalf("error = %v, want a denial", err)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("message %q lacks %q", err, w)
					}
				}
			})
		}
	})

	t.Run("Job's pod, created by the job controller, is mutated", func(t *testing.T) {
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "multicluster-client"},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{v1alpha1.ImportNameKey: ready.Name}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "multicluster-client", Image: "multicluster-client"}},
				},
			}},
		}
		job, err := e.admin.BatchV1().Jobs(team).Create(ctx, job, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var pod *corev1.Pod
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
			pods, err := e.admin.CoreV1().Pods(team).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + job.Name})
			if err != nil || len(pods.Items) == 0 {
				return false, nil
			}
			pod = &pods.Items[0]
			return true, nil
		})
		if err != nil {
			t.Fatalf("the job controller created no pod: %v\n%s", err, namespaceEvents(e, team))
		}
		assertMounted(t, pod, ready.Name)
	})

	t.Run("the controller's identity is confined", func(t *testing.T) {
		sa := kubernetes.NewForConfigOrDie(e.asSA)
		other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: controllerNamespace}}
		if _, err := e.admin.CoreV1().Secrets(controllerNamespace).Create(ctx, other, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		otherWebhooks := e.webhook.DeepCopy()
		otherWebhooks.Name = "other-webhooks"
		otherWebhooks.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matches"}}
		e.apply(t, otherWebhooks)
		patch := []byte(`{"metadata":{"labels":{"hijacked":"true"}}}`)
		for _, tc := range []struct {
			name string
			do   func() error
		}{
			{"update another secret of its namespace", func() error {
				_, err := sa.CoreV1().Secrets(controllerNamespace).Update(ctx, other, metav1.UpdateOptions{})
				return err
			}},
			{"list secrets", func() error {
				_, err := sa.CoreV1().Secrets(controllerNamespace).List(ctx, metav1.ListOptions{})
				return err
			}},
			{"create a secret", func() error {
				_, err := sa.CoreV1().Secrets(controllerNamespace).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, metav1.CreateOptions{})
				return err
			}},
			{"delete its certificate", func() error {
				return sa.CoreV1().Secrets(controllerNamespace).Delete(ctx, manifests.ServingCertSecret, metav1.DeleteOptions{})
			}},
			{"patch another webhook configuration", func() error {
				_, err := sa.AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(ctx, "other-webhooks", types.MergePatchType, patch, metav1.PatchOptions{})
				return err
			}},
			{"list webhook configurations", func() error {
				_, err := sa.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
				return err
			}},
			{"delete its webhook configuration", func() error {
				return sa.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, manifests.WebhookConfiguration, metav1.DeleteOptions{})
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := tc.do(); !apierrors.IsForbidden(err) {
					t.Fatalf("error = %v, want Forbidden", err)
				}
			})
		}
	})

	t.Run("webhook stopped", func(t *testing.T) {
		e.stop()
		defer func() {
			e.start(t)
			e.waitReady(t)
		}()
		t.Run("unannotated pod admitted untouched", func(t *testing.T) {
			pod, _, err := e.createPod(t, team, plainPod())
			if err != nil {
				t.Fatalf("an unannotated pod waited on the stopped webhook: %v", err)
			}
			assertUntouched(t, pod)
		})
		t.Run("annotated pod in the controller's namespace admitted untouched", func(t *testing.T) {
			pod, _, err := e.createPod(t, controllerNamespace, annotatedPod("whatever"))
			if err != nil {
				t.Fatalf("the controller's namespace waited on the stopped webhook: %v", err)
			}
			assertUntouched(t, pod)
		})
		t.Run("annotated pod refused", func(t *testing.T) {
			// failurePolicy Fail: never started without the credentials it asked for.
			if _, _, err := e.createPod(t, team, annotatedPod(ready.Name)); err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
				t.Fatalf("error = %v, want the API server failing to call the webhook", err)
			}
		})
	})

	t.Run("certificate rotation without a failed admission", func(t *testing.T) {
		e.rotation(t, ready.Name)
	})
}

// setup prepares the cluster, which has the CRD: namespaces, the controller's identity with the
// webhook's rights, and the webhook's manifests but its registration; it starts the webhook and
// checks that it is not ready before registering it.
func setup(t *testing.T, c *fixture.Cluster) *env {
	ctx := context.Background()
	// controller-runtime takes its logger once per process (tests may run with -count > 1):
	// each run reads the logs written after it began.
	setLoggerOnce.Do(func() {
		logf.SetLogger(funcr.New(func(prefix, args string) { webhookLogs.WriteString(prefix + " " + args + "\n") }, funcr.Options{}))
	})
	logs := &logView{buf: webhookLogs, from: webhookLogs.Len()}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("webhook logs:\n%s", logs.tail(20000))
		}
	})
	cl := c.Client
	asSA := rest.CopyConfig(c.Config)
	asSA.Impersonate = rest.ImpersonationConfig{UserName: controllerUser,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + controllerNamespace}}
	e := &env{t: t, admin: c.Clientset(), cl: cl, config: c.Config, asSA: asSA, logs: logs,
		port: freePort(t), probe: freePort(t)}

	if err := c.Namespaces(ctx, controllerNamespace, team, "other"); err != nil {
		t.Fatal(err)
	}

	// The controller's service account with the rights the importer's ClusterRole gives it
	// (reading imports, secrets and ConfigMaps), and the shipped webhook manifests, but the
	// registration.
	objs, err := fixture.Render("webhook")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: manifests.ControllerServiceAccount, Namespace: controllerNamespace}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "e2e-importer-reads"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"serviceaccountimports"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}},
		}},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-importer-reads"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "e2e-importer-reads"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: manifests.ControllerServiceAccount, Namespace: controllerNamespace}},
		},
	} {
		if err := cl.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range objs {
		if o.GetKind() == "MutatingWebhookConfiguration" {
			e.webhook = &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, e.webhook); err != nil {
				t.Fatal(err)
			}
			continue
		}
		e.apply(t, o)
	}
	if e.webhook == nil || len(e.webhook.Webhooks) != 1 {
		t.Fatal("manifests/webhook has no MutatingWebhookConfiguration with one webhook")
	}
	// The API server reaches this process on loopback instead of the Service.
	url := fmt.Sprintf("https://127.0.0.1:%d%s", e.port, *e.webhook.Webhooks[0].ClientConfig.Service.Path)
	e.webhook.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}

	e.start(t)
	// Not ready while unregistered.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return strings.Contains(logs.String(), "MutatingWebhookConfiguration mcsa-automount not found"), nil
	}); err != nil {
		t.Fatal("the webhook never checked its registration")
	}
	if status, body := e.readyz(); status == http.StatusOK {
		t.Fatalf("ready before its registration exists: %s", body)
	}
	e.apply(t, e.webhook)
	return e
}

// start serves the webhook from this process, in a manager of its own, as the controller's
// service account; stop ends it.
func (e *env) start(t *testing.T) {
	scheme, err := fixture.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := manager.New(e.asSA, manager.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: fmt.Sprintf("127.0.0.1:%d", e.probe),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = automount.Setup(mgr, automount.Options{
		Host:       "127.0.0.1",
		Port:       e.port,
		ExtraHosts: []string{"127.0.0.1"},
		// Quick checks so that a forced rotation completes in seconds.
		Timing: servingcert.Timing{CheckInterval: 200 * time.Millisecond, Overlap: 2 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("webhook manager: %v", err)
			}
		})
	}
	e.t.Cleanup(e.stop)
}

func (e *env) readyz() (int, string) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz?verbose", e.probe))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(b)
}

func (e *env) waitReady(t *testing.T) {
	t.Helper()
	var body string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		var status int
		status, body = e.readyz()
		return status == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("webhook not ready: %s", body)
	}
}

func (e *env) registration(t *testing.T) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	mwc, err := e.admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), manifests.WebhookConfiguration, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return mwc
}

// apply server-side applies an object as an installer would.
func (e *env) apply(t *testing.T, obj any) {
	t.Helper()
	u := &unstructured.Unstructured{}
	switch o := obj.(type) {
	case *unstructured.Unstructured:
		u = o.DeepCopy()
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			t.Fatal(err)
		}
		u.Object = m
		u.SetAPIVersion("admissionregistration.k8s.io/v1")
		u.SetKind("MutatingWebhookConfiguration")
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	}
	if err := e.cl.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(installer), client.ForceOwnership); err != nil {
		t.Fatalf("applying %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// createImport creates an import and, when written, its secret as the importer keeps it.
func (e *env) createImport(t *testing.T, ns, name string, written bool) *v1alpha1.ServiceAccountImport {
	t.Helper()
	ctx := context.Background()
	imp := &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "pod-lister"},
	}
	if err := e.cl.Create(ctx, imp); err != nil {
		t.Fatal(err)
	}
	if written {
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: v1alpha1.SecretName(name), Labels: map[string]string{v1alpha1.ImportNameKey: name},
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(imp, v1alpha1.GroupVersion.WithKind("ServiceAccountImport"))}},
			StringData: map[string]string{v1alpha1.SecretKeyToken: "token"},
		}
		if err := e.cl.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
	}
	return imp
}

// createFederatedImport creates a federated import and, as the importer writes it, its
// ConfigMap.
func (e *env) createFederatedImport(t *testing.T, ns, name string, expiration *int64) *v1alpha1.ServiceAccountImport {
	t.Helper()
	ctx := context.Background()
	imp := &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "pod-lister",
			Mode: v1alpha1.ModeFederated, ExpirationSeconds: expiration},
	}
	if err := e.cl.Create(ctx, imp); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: v1alpha1.FederatedConfigMapName(name),
			Labels:          map[string]string{v1alpha1.ImportNameKey: v1alpha1.SecretLabelValue(name)},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(imp, v1alpha1.GroupVersion.WithKind("ServiceAccountImport"))}},
		Data: map[string]string{
			v1alpha1.SecretKeyServer:    "https://cluster2.example:6443",
			v1alpha1.SecretKeyNamespace: "default",
			v1alpha1.KeyAs:              v1alpha1.ServiceAccountUser("default", "pod-lister"),
		},
	}
	if err := e.cl.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	return imp
}

// createPod creates a pod and returns it as stored and the API server's warnings.
func (e *env) createPod(t *testing.T, ns string, pod *corev1.Pod) (*corev1.Pod, []string, error) {
	t.Helper()
	cfg := rest.CopyConfig(e.config)
	warnings := &warningRecorder{}
	cfg.WarningHandler = warnings
	created, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	return created, warnings.list(), err
}

// rotation forces a rotation while pods are admitted without pause, and checks that none
// fails and that the API server ends up trusting only the new CA.
func (e *env) rotation(t *testing.T, importName string) {
	ctx := context.Background()
	secret, err := e.admin.CoreV1().Secrets(controllerNamespace).Get(ctx, manifests.ServingCertSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldCA := firstCert(t, secret.Data[servingcert.KeyCABundle])
	oldServed := e.servedCert(t)
	if oldServed.CheckSignatureFrom(oldCA) != nil {
		t.Fatal("the served certificate is not of the Secret's CA")
	}

	var admitted, failed atomic.Int64
	var firstFailure atomic.Value
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	cs := kubernetes.NewForConfigOrDie(e.config)
	go func() {
		defer close(loadDone)
		for {
			select {
			case <-stopLoad:
				return
			default:
			}
			pod, err := cs.CoreV1().Pods(team).Create(ctx, annotatedPod(importName), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil && len(pod.Spec.Volumes) > 0 && pod.Spec.Volumes[len(pod.Spec.Volumes)-1].Name == v1alpha1.VolumeName(importName) {
				admitted.Add(1)
				continue
			}
			failed.Add(1)
			firstFailure.CompareAndSwap(nil, fmt.Sprintf("%v", err))
		}
	}()
	defer func() {
		close(stopLoad)
		<-loadDone
	}()

	// Some admissions with the first certificate.
	waitAdmitted := func(n int64) {
		t.Helper()
		target := admitted.Load() + n
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
			return admitted.Load() >= target || failed.Load() > 0, nil
		}); err != nil || failed.Load() > 0 {
			t.Fatalf("admissions stalled or failed (%d admitted, %d failed, first failure: %v)", admitted.Load(), failed.Load(), firstFailure.Load())
		}
	}
	waitAdmitted(10)

	secret.Annotations = map[string]string{v1alpha1.RotateRequestedAnnotation: time.Now().Format(time.RFC3339)}
	if _, err := e.admin.CoreV1().Secrets(controllerNamespace).Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Done when a certificate of a new CA is served and the API server trusts that CA only.
	var newServed *x509.Certificate
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
		if failed.Load() > 0 {
			return true, nil
		}
		newServed = e.servedCert(t)
		bundle := e.registration(t).Webhooks[0].ClientConfig.CABundle
		return newServed.CheckSignatureFrom(oldCA) != nil && len(certs(t, bundle)) == 1 && !firstCert(t, bundle).Equal(oldCA), nil
	})
	if err != nil {
		t.Fatalf("rotation did not complete: %v", err)
	}
	waitAdmitted(20)
	if failed.Load() > 0 {
		t.Fatalf("%d admissions failed during the rotation, first: %v", failed.Load(), firstFailure.Load())
	}
	if newServed.CheckSignatureFrom(firstCert(t, e.registration(t).Webhooks[0].ClientConfig.CABundle)) != nil {
		t.Fatal("the served certificate is not of the injected CA")
	}
	events, _ := e.admin.EventsV1().Events(controllerNamespace).List(ctx, metav1.ListOptions{})
	reasons := map[string]bool{}
	for _, ev := range events.Items {
		reasons[ev.Reason] = true
	}
	for _, r := range []string{servingcert.ReasonCARotated, servingcert.ReasonCertificateIssued, servingcert.ReasonCARetired, servingcert.ReasonCABundleInjected} {
		if !reasons[r] {
			t.Errorf("no %s event on the Secret", r)
		}
	}
	t.Logf("%d pods admitted across the rotation, none failed", admitted.Load())
}

// servedCert is the certificate the webhook serves now.
func (e *env) servedCert(t *testing.T) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.port), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only reads the certificate
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func annotatedPod(imports string) *corev1.Pod {
	pod := plainPod()
	pod.Annotations = map[string]string{v1alpha1.ImportNameKey: imports}
	pod.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "busybox"}}
	return pod
}

func plainPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "client-"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}, {Name: "sidecar", Image: "busybox"}}},
	}
}

// assertMounted checks that each import's secret is mounted read-only in every container.
func assertMounted(t *testing.T, pod *corev1.Pod, imports ...string) {
	t.Helper()
	ours := 0
	for _, name := range imports {
		found := false
		for _, v := range pod.Spec.Volumes {
			if v.Name == v1alpha1.VolumeName(name) {
				found = v.Secret != nil && v.Secret.SecretName == v1alpha1.SecretName(name)
				ours++
			}
		}
		if !found {
			t.Errorf("no volume of secret %s", v1alpha1.SecretName(name))
		}
		for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
			n := 0
			for _, m := range c.VolumeMounts {
				if m.Name == v1alpha1.VolumeName(name) && m.MountPath == v1alpha1.MountPath(name) && m.ReadOnly {
					n++
				}
			}
			if n != 1 {
				t.Errorf("container %s mounts %s %d times", c.Name, name, n)
			}
		}
	}
	if ours != len(imports) {
		t.Errorf("%d volumes for %d imports", ours, len(imports))
	}
}

// assertFederatedMounted checks that federated import name is mounted, read-only in every
// container, as a projected volume of the pod's token for audience, of the given lifetime, and
// of the import's ConfigMap, as the API server stored it.
func assertFederatedMounted(t *testing.T, pod *corev1.Pod, name, audience string, expiration int64) {
	t.Helper()
	var volume *corev1.Volume
	for i, v := range pod.Spec.Volumes {
		if v.Name == v1alpha1.VolumeName(name) {
			volume = &pod.Spec.Volumes[i]
		}
	}
	if volume == nil || volume.Projected == nil || len(volume.Projected.Sources) != 2 {
		t.Fatalf("no projected volume %s: %+v", v1alpha1.VolumeName(name), volume)
	}
	token, cm := volume.Projected.Sources[0].ServiceAccountToken, volume.Projected.Sources[1].ConfigMap
	if token == nil || token.Audience != audience || token.ExpirationSeconds == nil || *token.ExpirationSeconds != expiration || token.Path != v1alpha1.SecretKeyToken {
		t.Errorf("token source %+v, want audience %s, %ds, path %s", token, audience, expiration, v1alpha1.SecretKeyToken)
	}
	if cm == nil || cm.Name != v1alpha1.FederatedConfigMapName(name) || len(cm.Items) > 0 || (cm.Optional != nil && *cm.Optional) {
		t.Errorf("ConfigMap source %+v, want all of ConfigMap %s", cm, v1alpha1.FederatedConfigMapName(name))
	}
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		n := 0
		for _, m := range c.VolumeMounts {
			if m.Name == v1alpha1.VolumeName(name) && m.MountPath == v1alpha1.MountPath(name) && m.ReadOnly {
				n++
			}
		}
		if n != 1 {
			t.Errorf("container %s mounts %s %d times", c.Name, name, n)
		}
	}
}

func assertUntouched(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, "mcsa") {
			t.Errorf("pod got volume %s", v.Name)
		}
	}
}

// namespaceEvents lists a namespace's events, to explain a failure.
func namespaceEvents(e *env, ns string) string {
	events, err := e.admin.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, ev := range events.Items {
		fmt.Fprintf(&b, "%s %s: %s\n", ev.InvolvedObject.Name, ev.Reason, ev.Message)
	}
	return b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func certs(t *testing.T, bundle []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for rest := bundle; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return out
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func firstCert(t *testing.T, bundle []byte) *x509.Certificate {
	t.Helper()
	cs := certs(t, bundle)
	if len(cs) == 0 {
		t.Fatal("empty CA bundle")
	}
	return cs[0]
}

type warningRecorder struct {
	mu       sync.Mutex
	warnings []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

func (w *warningRecorder) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.warnings...)
}

var (
	setLoggerOnce sync.Once
	webhookLogs   = &syncBuffer{}
)

// syncBuffer collects the webhook's logs, shown when a test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) WriteString(str string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(str)
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logView is the part of the logs written since a test run began.
type logView struct {
	buf  *syncBuffer
	from int
}

func (v *logView) String() string { return v.buf.String()[v.from:] }

func (v *logView) tail(n int) string {
	str := v.String()
	if len(str) > n {
		str = str[len(str)-n:]
	}
	return str
}
