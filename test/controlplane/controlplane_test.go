package controlplane

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestTwoClusters(t *testing.T) {
	SkipIfShort(t)
	ctx := context.Background()
	cs, err := StartAll(ctx, Options{Log: t.Logf}, "cluster1", "cluster2")
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			cs.Stop()
		}
	}()
	c1, c2 := cs[0].Clientset(), cs[1].Clientset()

	t.Run("independent", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "only-in-cluster1"}}
		if _, err := c1.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c2.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("namespace created in cluster1 visible in cluster2: err=%v", err)
		}
		if cs[0].Server == cs[1].Server || string(cs[0].CAData) == string(cs[1].CAData) || cs[0].Issuer == cs[1].Issuer {
			t.Fatal("clusters share a server, CA or token issuer")
		}
	})

	t.Run("controller manager", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kcm-check"}}
		if _, err := c2.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "default service account and kube-root-ca.crt in new namespace", func() error {
			if _, err := c2.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{}); err != nil {
				return err
			}
			_, err := c2.CoreV1().ConfigMaps(ns.Name).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			return err
		})
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "a-job", Namespace: ns.Name},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "main", Image: "example.invalid/none:v1"}},
			}}},
		}
		if _, err := c2.BatchV1().Jobs(ns.Name).Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "job controller creates the Job's pod", func() error {
			pods, err := c2.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{LabelSelector: "job-name=a-job"})
			if err == nil && len(pods.Items) == 0 {
				err = errNotYet
			}
			return err
		})
	})

	t.Run("kubeconfig", func(t *testing.T) {
		path := t.TempDir() + "/kubeconfig"
		if err := WriteKubeconfig(path, cs...); err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
				&clientcmd.ClientConfigLoadingRules{ExplicitPath: path},
				&clientcmd.ConfigOverrides{CurrentContext: c.Name}).ClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			client := kubernetes.NewForConfigOrDie(cfg)
			if _, err := client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
				t.Fatalf("context %s: %v", c.Name, err)
			}
		}
	})

	t.Run("teardown leaves no process", func(t *testing.T) {
		var pids []int
		for _, c := range cs {
			for _, p := range c.procs {
				pids = append(pids, p.cmd.Process.Pid)
			}
		}
		dirs := []string{cs[0].Dir, cs[1].Dir}
		cs.Stop()
		stopped = true
		for _, pid := range pids {
			// A reaped process is gone; signal 0 reports whether the pid still exists.
			if err := syscall.Kill(pid, 0); err == nil && !isZombie(pid) {
				t.Errorf("process %d still running after Stop", pid)
			}
		}
		for _, d := range dirs {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Errorf("cluster directory %s left behind", d)
			}
		}
	})
}

var errNotYet = apierrors.NewNotFound(corev1.Resource("pods"), "not yet")

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		last = f()
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: %v (last error: %v)", what, err, last)
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] == "Z"
}

func TestReplaceFlags(t *testing.T) {
	args := []string{"--kubeconfig=k", "--root-ca-file=old.crt", "-v=1"}
	tests := []struct {
		name string
		set  []string
		want []string
	}{
		{"none", nil, args},
		{"replaced in place", []string{"--root-ca-file=new.crt"}, []string{"--kubeconfig=k", "--root-ca-file=new.crt", "-v=1"}},
		{"added", []string{"--leader-elect=false"}, append(slices.Clone(args), "--leader-elect=false")},
		{"a prefix of another flag is another flag", []string{"--root-ca=x"}, append(slices.Clone(args), "--root-ca=x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replaceFlags(args, tt.set); !slices.Equal(got, tt.want) {
				t.Errorf("replaceFlags(%q) = %q, want %q", tt.set, got, tt.want)
			}
		})
	}
	if args[1] != "--root-ca-file=old.crt" {
		t.Error("replaceFlags changed its input")
	}
}
