package walkthrough

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// PluginImage holds only the plugin's static binary, as a distroless image would: the exec
// credential plugin must start there (consumers copy it into their own images).
const PluginImage = "mcsa.test/kubectl-mcsa:e2e"

const credentialPod = "exec-credential"

// credentialInPod runs `kubectl-mcsa credential` in a pod of the plugin's image, annotated with
// the import: it must print an ExecCredential holding the mounted token, valid until before the
// token's expiry.
func (w *Walkthrough) credentialInPod(ctx context.Context) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: credentialPod, Namespace: namespace,
			Annotations: map[string]string{v1alpha1.ImportNameKey: importName}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "credential", Image: PluginImage, Args: []string{"credential", importName}}}},
	}
	w.say("$ kubectl --context cluster1 run %s --image %s --restart Never \\\n    --annotations %s=%s -- credential %s",
		credentialPod, PluginImage, v1alpha1.ImportNameKey, importName, importName)
	cs := w.env.C1.Clientset()
	if _, err := cs.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
		return err
	}
	if err := waitFor(ctx, 2*time.Minute, "pod "+credentialPod+" to finish", func(ctx context.Context) (bool, string) {
		p, err := cs.CoreV1().Pods(namespace).Get(ctx, credentialPod, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, string(p.Status.Phase) + " " + containerStates(p)
	}); err != nil {
		return err
	}
	var cred clientauthv1.ExecCredential
	log := finishedLog(ctx, cs, credentialPod, "", func(log string) bool { return json.Unmarshal([]byte(log), &cred) == nil })
	if err := json.Unmarshal([]byte(log), &cred); err != nil {
		return fmt.Errorf("the plugin's output in its image is not an ExecCredential (%v): %q", err, log)
	}
	tok, err := w.currentToken(ctx)
	if err != nil {
		return err
	}
	switch {
	case cred.APIVersion != clientauthv1.SchemeGroupVersion.String() || cred.Kind != "ExecCredential" || cred.Status == nil:
		return fmt.Errorf("not an ExecCredential of %s: %q", clientauthv1.SchemeGroupVersion, log)
	case cred.Status.ExpirationTimestamp == nil || !cred.Status.ExpirationTimestamp.Time.Before(time.Unix(tok.ExpiresAt, 0)):
		return fmt.Errorf("expirationTimestamp %v, want set and before the token's expiry %s", cred.Status.ExpirationTimestamp, time.Unix(tok.ExpiresAt, 0).UTC())
	}
	got, err := parseToken(cred.Status.Token)
	if err != nil || got.ID != tok.ID {
		return fmt.Errorf("the credential's token is not the mounted one (%s): %v", tok.ID, err)
	}
	w.say("The plugin, alone in a distroless-style image (its static binary, user nonroot), printed\n"+
		"an ExecCredential with the mounted token %s, to be fetched again at %s (the\n"+
		"importer's refresh point; the token expires at %s).", got.ID,
		cred.Status.ExpirationTimestamp.UTC().Format(time.RFC3339), time.Unix(tok.ExpiresAt, 0).UTC().Format(time.RFC3339))
	return nil
}
