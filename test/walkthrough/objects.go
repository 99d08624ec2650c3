package walkthrough

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// Names of the original getting-started.
const (
	importName = "cluster2-default-pod-lister"
	jobName    = "multicluster-client"
	nginx      = "nginx"
	namespace  = metav1.NamespaceDefault

	import3Name = "cluster3-default-pod-lister"
	loopPod     = "pod-lister-loop"
	twoPod      = "two-clusters-client"
)

// gettingStarted is the original's cluster1 manifest, unchanged but for the image.
const gettingStarted = `apiVersion: multicluster.admiralty.io/v1alpha1
kind: ServiceAccountImport
metadata:
  name: cluster2-default-pod-lister
spec:
  clusterName: cluster2
  namespace: default
  name: pod-lister
---
apiVersion: batch/v1
kind: Job
metadata:
  name: multicluster-client
spec:
  template:
    metadata:
      annotations:
        multicluster.admiralty.io/service-account-import.name: cluster2-default-pod-lister
    spec:
      restartPolicy: Never
      containers:
      - name: multicluster-client
        image: ` + MulticlusterClientImage + `
`

// loopManifest is a long-running client of cluster2, for rotation under load: generic-client
// lists cluster2's pods four times a second until it is stopped, then prints its count.
const loopManifest = `apiVersion: v1
kind: Pod
metadata:
  name: ` + loopPod + `
  annotations:
    multicluster.admiralty.io/service-account-import.name: cluster2-default-pod-lister
spec:
  restartPolicy: Never
  containers:
  - name: generic-client
    image: ` + GenericClientImage + `
    args: [-loop, -interval=250ms]
`

// twoManifest is the original's pod with two imports ("separate their names with commas"),
// running generic-client with every mounted import.
const twoManifest = `apiVersion: v1
kind: Pod
metadata:
  name: ` + twoPod + `
  annotations:
    multicluster.admiralty.io/service-account-import.name: cluster2-default-pod-lister,cluster3-default-pod-lister
spec:
  restartPolicy: Never
  containers:
  - name: generic-client
    image: ` + GenericClientImage + `
    args: [-all]
`

// decode reads a multi-document manifest into typed objects.
func decode(manifest string) ([]client.Object, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	dec := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	var out []client.Object
	for _, doc := range strings.Split(manifest, "\n---\n") {
		obj, _, err := dec.Decode([]byte(doc), nil, nil)
		if err != nil {
			return nil, fmt.Errorf("decoding the manifest: %w", err)
		}
		o, ok := obj.(client.Object)
		if !ok {
			return nil, fmt.Errorf("decoding the manifest: %T is not an object", obj)
		}
		if o.GetNamespace() == "" {
			o.SetNamespace(namespace)
		}
		out = append(out, o)
	}
	return out, nil
}

// podListerCommands are the original's commands in cluster2 (the same in cluster3), with the
// image changed.
var podListerCommands = []string{
	"create serviceaccount pod-lister",
	"create role pod-lister --verb=list --resource=pods",
	"create rolebinding pod-lister --role=pod-lister --serviceaccount=default:pod-lister",
	"run nginx --image " + NginxImage,
}

// podListerObjects are what those commands create.
func podListerObjects() (*corev1.ServiceAccount, *rbacv1.Role, *rbacv1.RoleBinding, *corev1.Pod) {
	meta := metav1.ObjectMeta{Name: "pod-lister", Namespace: namespace}
	return &corev1.ServiceAccount{ObjectMeta: meta},
		&rbacv1.Role{ObjectMeta: meta, Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}}},
		&rbacv1.RoleBinding{ObjectMeta: meta,
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-lister"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: "pod-lister"}}},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: nginx, Namespace: namespace, Labels: map[string]string{"run": nginx}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: nginx, Image: NginxImage}}},
		}
}

// clientFieldOwner names the scenario in the writes of its controller-runtime client.
var clientFieldOwner = client.FieldOwner(fieldManager)

func keyOf(name string) client.ObjectKey { return client.ObjectKey{Namespace: namespace, Name: name} }
