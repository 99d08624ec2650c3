package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/image"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/node"
)

func TestMain(m *testing.M) { os.Exit(node.RunInNetns(m)) }

const (
	checkImage = "mcsa.test/nodecheck:e2e"
	nginxImage = "mcsa.test/nginx:e2e"
	ns         = metav1.NamespaceDefault
	fm         = "node-test"
)

// TestNode runs cluster1 as a real node and cluster2 as a control plane, both inside the
// sandbox, and checks what the walkthrough relies on: secret volumes that follow updates, Jobs
// run by the job controller and scheduler whose logs the apiserver serves, pods reaching their
// own apiserver through the `kubernetes` Service and another cluster's at its URL, Services
// reachable from the node (as the apiserver reaches webhooks) — and that stopping the node
// leaves the sandbox as it was (the host is checked by RunInNetns afterwards).
func TestNode(t *testing.T) {
	node.Require(t)
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	node.ExpectClean(t)

	images := filepath.Join(t.TempDir(), "images.tar")
	err := image.Build(ctx, images,
		image.Spec{Ref: checkImage, Package: "github.com/kubectl-mcsa/kubectl-mcsa/test/images/nodecheck"},
		image.Spec{Ref: nginxImage, Package: "github.com/kubectl-mcsa/kubectl-mcsa/test/images/nginx"},
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("images built in %s", time.Since(began).Round(time.Millisecond))

	var c1 *node.Cluster
	var c2 *controlplane.Cluster
	errs := make(chan error, 2)
	go func() {
		var err error
		c1, err = node.Start(ctx, "cluster1", node.Options{Images: []string{images}, Log: t.Logf})
		errs <- err
	}()
	go func() {
		var err error
		c2, err = controlplane.Start(ctx, "cluster2", controlplane.Options{Address: node.IP, Log: t.Logf})
		errs <- err
	}()
	startErr := []error{<-errs, <-errs}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		if c2 != nil {
			c2.Stop()
		}
		if c1 != nil {
			if err := c1.Stop(); err != nil {
				t.Error(err)
			}
		}
	}
	defer stop()
	for _, err := range startErr {
		if err != nil {
			t.Fatal(err)
		}
	}
	nodeReady := time.Since(began)
	t.Logf("cluster1 node ready and cluster2 serving %s after the start", nodeReady.Round(time.Millisecond))
	cs := c1.Clientset()

	t.Run("group", func(t *testing.T) {
		t.Run("secret volume follows updates", func(t *testing.T) {
			t.Parallel()
			testSecretVolume(ctx, t, cs, began)
		})
		t.Run("job reaches both apiservers and its log is served", func(t *testing.T) {
			t.Parallel()
			testJob(ctx, t, cs, c2)
		})
		t.Run("service reachable from the node", func(t *testing.T) {
			t.Parallel()
			testService(ctx, t, cs)
		})
	})
	if t.Failed() {
		if pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, p := range pods.Items {
				t.Logf("pod %s: %s %+v", p.Name, p.Status.Phase, p.Status.ContainerStatuses)
			}
		}
		if events, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, e := range events.Items {
				t.Logf("event %s %s: %s %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
			}
		}
		for _, comp := range []string{"kubelet", "containerd", "kube-proxy", "kube-scheduler"} {
			t.Logf("%s log:\n%s", comp, c1.Logs(comp))
		}
	}

	stopBegan := time.Now()
	stop()
	t.Logf("clusters stopped in %s", time.Since(stopBegan).Round(time.Millisecond))
	t.Logf("whole test %s", time.Since(began).Round(time.Millisecond))
}

func testSecretVolume(ctx context.Context, t *testing.T, cs kubernetes.Interface, began time.Time) {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "watched"},
		StringData: map[string]string{"value": "one"},
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{FieldManager: fm}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "watcher"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:            "watch",
				Image:           checkImage,
				ImagePullPolicy: corev1.PullNever,
				Args:            []string{"watch", "/etc/watched/value"},
				VolumeMounts:    []corev1.VolumeMount{{Name: "watched", MountPath: "/etc/watched", ReadOnly: true}},
				SecurityContext: restricted(),
			}},
			Volumes: []corev1.Volume{{Name: "watched", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "watched"}}}},
		},
	}
	created := time.Now()
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{FieldManager: fm}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "pod watcher Running", func() (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "watcher", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})
	t.Logf("first pod Running %s after its creation (%s after the start)", time.Since(created).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	waitLog(ctx, t, cs, "watcher", "/etc/watched/value=one")

	secret.StringData["value"] = "two"
	updated := time.Now()
	if _, err := cs.CoreV1().Secrets(ns).Update(ctx, secret, metav1.UpdateOptions{FieldManager: fm}); err != nil {
		t.Fatal(err)
	}
	waitLog(ctx, t, cs, "watcher", "/etc/watched/value=two")
	t.Logf("secret update seen in the running container after %s", time.Since(updated).Round(time.Millisecond))
}

func testJob(ctx context.Context, t *testing.T, cs kubernetes.Interface, c2 *controlplane.Cluster) {
	ca := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster2-ca"},
		Data:       map[string][]byte{"ca.crt": c2.CAData},
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, ca, metav1.CreateOptions{FieldManager: fm}); err != nil {
		t.Fatal(err)
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "apis"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{
						Name:            "apis",
						Image:           checkImage,
						ImagePullPolicy: corev1.PullNever,
						Args:            []string{"apis", c2.Server, "/etc/cluster2/ca.crt"},
						VolumeMounts:    []corev1.VolumeMount{{Name: "cluster2-ca", MountPath: "/etc/cluster2", ReadOnly: true}},
						SecurityContext: restricted(),
					}},
					Volumes: []corev1.Volume{{Name: "cluster2-ca", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "cluster2-ca"}}}},
				},
			},
		},
	}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{FieldManager: fm}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "job apis finished", func() (bool, error) {
		j, err := cs.BatchV1().Jobs(ns).Get(ctx, "apis", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range j.Status.Conditions {
			if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
				return true, nil
			}
		}
		return false, nil
	})
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=apis"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("job pods: %v, %v; want one", pods, err)
	}
	p := pods.Items[0]
	if p.Spec.NodeName == "" {
		t.Error("the job's pod has no node: the scheduler did not bind it")
	}
	wants := []string{
		"own cluster https://10.96.0.1:443: authenticated as system:serviceaccount:default:default",
		fmt.Sprintf("other cluster %s: version v1.37.2", c2.Server),
	}
	// containerd copies a container's output to its log file asynchronously: the file may still
	// be incomplete when the Job reports completion.
	var log []byte
	waitFor(ctx, t, "the job pod's log, through the apiserver", func() (bool, error) {
		var err error
		if log, err = cs.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx); err != nil {
			return false, err
		}
		for _, want := range wants {
			if !strings.Contains(string(log), want) {
				return false, nil
			}
		}
		return true, nil
	})
	if p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("job pod %s is %s, want Succeeded", p.Name, p.Status.Phase)
	}
}

// testService runs the nginx stand-in as a non-root pod on port 80 behind a Service, and calls
// it from the test process (the node's network namespace) at the Service's cluster IP: the way
// the apiserver calls an in-cluster webhook.
func testService(ctx context.Context, t *testing.T, cs kubernetes.Interface) {
	labels := map[string]string{"app": "nginx"}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx", Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:            "nginx",
				Image:           nginxImage,
				ImagePullPolicy: corev1.PullNever,
				Ports:           []corev1.ContainerPort{{ContainerPort: 80}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(80)}},
					PeriodSeconds: 1,
				},
				SecurityContext: restricted(),
			}},
		},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{FieldManager: fm}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80)}},
		},
	}
	svc, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{FieldManager: fm})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	var body string
	waitFor(ctx, t, "nginx answering at its Service's IP "+svc.Spec.ClusterIP, func() (bool, error) {
		resp, err := client.Get("http://" + svc.Spec.ClusterIP + "/")
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK, nil
	})
	if !strings.Contains(body, "Welcome to nginx!") {
		t.Errorf("nginx answered %q", body)
	}
}

func restricted() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr.To(true),
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func waitLog(ctx context.Context, t *testing.T, cs kubernetes.Interface, pod, want string) {
	t.Helper()
	var log []byte
	waitFor(ctx, t, fmt.Sprintf("pod %s logging %q", pod, want), func() (bool, error) {
		var err error
		log, err = cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{}).DoRaw(ctx)
		return err == nil && strings.Contains(string(log), want), nil
	})
}

// waitFor polls generously: the machine is small and shared.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		ok, err := cond()
		lastErr = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last error: %v)", what, err, lastErr)
	}
}
