package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// ExportOptions are `kubectl mcsa export`'s.
type ExportOptions struct {
	genericiooptions.IOStreams
	ui         *ui.UI
	printFlags *genericclioptions.PrintFlags
	connect    clientsFunc

	ServiceAccount  string
	As              string
	TargetNamespace string
	ClusterName     string
	Server          string
	TTL             time.Duration
	Audiences       []string

	clients *kube.Clients
}

// NewExportOptions are export's defaults.
func NewExportOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *ExportOptions {
	return &ExportOptions{
		IOStreams:  streams,
		ui:         ui.New(streams.ErrOut),
		printFlags: genericclioptions.NewPrintFlags("").WithTypeSetter(scheme).WithDefaultOutput("yaml"),
		connect:    clientsFor(configFlags),
		TTL:        24 * time.Hour,
	}
}

// NewCmdExport is `kubectl mcsa export`.
func NewCmdExport(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewExportOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "export SERVICEACCOUNT",
		Short: "Print a Secret with a token of a local service account, to apply in another cluster",
		Long: `Push mode, as in the original project: mint a token for a service account of this cluster
(TokenRequest) and print a Secret holding it with this cluster's CA, server URL, the service
account's namespace and a kubeconfig, in the layout of an import's secret, to be applied in
another cluster. Nothing renews it: it stops working after --ttl. Prefer imports, which rotate.`,
		Example:           `  kubectl mcsa export pod-lister -n default --context cluster2 --as cluster2-default-pod-lister | kubectl apply --context cluster1 -f -`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeServiceAccounts(configFlags),
		RunE:              runE(o),
	}
	f := cmd.Flags()
	f.StringVar(&o.As, "as", o.As, "name of the printed Secret (default CLUSTER-NAMESPACE-SERVICEACCOUNT)")
	f.StringVar(&o.TargetNamespace, "target-namespace", o.TargetNamespace, "namespace of the printed Secret (default: none, apply it with -n)")
	f.StringVar(&o.ClusterName, "cluster-name", o.ClusterName, "this cluster's name in the kubeconfig (default: the kubeconfig cluster name)")
	f.StringVar(&o.Server, "server", o.Server, "this cluster's API URL as the other cluster reaches it (default: the kubeconfig's)")
	f.DurationVar(&o.TTL, "ttl", o.TTL, "token lifetime (the API server may shorten it)")
	f.StringSliceVar(&o.Audiences, "audience", o.Audiences, "intended audience of the token (repeatable)")
	o.printFlags.AddFlags(cmd)
	return cmd
}

// Complete reads the service account, connects and defaults the cluster name from the
// kubeconfig.
func (o *ExportOptions) Complete(_ *cobra.Command, args []string) error {
	o.ServiceAccount = args[0]
	var err error
	if o.clients, err = o.connect(); err != nil {
		return err
	}
	if o.ClusterName == "" {
		o.ClusterName, err = kube.ObjectName(o.clients.ClusterName(), "--cluster-name")
	}
	return err
}

// Validate has nothing to check: the API server validates the token request.
func (o *ExportOptions) Validate() error { return nil }

// Run mints the token and prints the Secret.
func (o *ExportOptions) Run(ctx context.Context) error {
	cl := o.clients
	server, ca, err := cl.ServerAndCA()
	if err != nil {
		return err
	}
	if o.Server != "" {
		server = o.Server
	}
	tr, err := cl.MintToken(ctx, cl.Namespace, o.ServiceAccount, o.TTL, o.Audiences)
	if err != nil {
		return err
	}
	secretName := o.As
	if secretName == "" {
		secretName = o.ClusterName + "-" + cl.Namespace + "-" + o.ServiceAccount
	}
	d := credential.Data{ClusterName: o.ClusterName, Server: server, CAData: ca, Namespace: cl.Namespace, Token: tr.Status.Token}
	// Mounted like an import of the secret's name, the kubeconfig finds its token.
	data, err := d.SecretData(v1alpha1.MountPath(secretName))
	if err != nil {
		return err
	}
	secret := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      secretName,
			Namespace: o.TargetNamespace,
			Labels:    map[string]string{v1alpha1.ImportNameKey: secretName},
			Annotations: map[string]string{
				v1alpha1.ExportedFromAnnotation:    fmt.Sprintf("%s/%s/%s", o.ClusterName, cl.Namespace, o.ServiceAccount),
				v1alpha1.TokenExpirationAnnotation: tr.Status.ExpirationTimestamp.UTC().Format(time.RFC3339),
			},
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
	p, err := o.printFlags.ToPrinter()
	if err != nil {
		return err
	}
	o.ui.Info("The token expires at %s and is not renewed.", tr.Status.ExpirationTimestamp.UTC().Format(time.RFC3339))
	return p.PrintObj(secret, o.Out)
}
