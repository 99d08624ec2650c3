package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// ExportOptions are `kubectl mcsa export`'s.
type ExportOptions struct {
	*common
	print *genericclioptions.PrintFlags

	ServiceAccount  string
	As              string
	TargetNamespace string
	ClusterName     string
	Server          string
	TTL             time.Duration
	Audiences       []string
}

func newExportCmd(c *common) *cobra.Command {
	o := &ExportOptions{common: c, print: genericclioptions.NewPrintFlags("").WithTypeSetter(scheme).WithDefaultOutput("yaml")}
	cmd := &cobra.Command{
		Use:   "export SERVICEACCOUNT",
		Short: "Print a Secret with a token of a local service account, to apply in another cluster",
		Long: `Push mode, as in the original project: mint a token for a service account of this cluster
(TokenRequest) and print a Secret holding it with this cluster's CA, server URL, the service
account's namespace and a kubeconfig, in the layout of an import's secret, to be applied in
another cluster. Nothing renews it: it stops working after --ttl. Prefer imports, which rotate.`,
		Example: `  kubectl mcsa export pod-lister -n default --context cluster2 --as cluster2-default-pod-lister | kubectl apply --context cluster1 -f -`,
		Args:    cobra.ExactArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			cl, err := c.clients()
			if err != nil || len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			l, err := cl.Kube.CoreV1().ServiceAccounts(cl.Namespace).List(ctxFor(cmd), metav1.ListOptions{})
			if err != nil {
				return nil, cobra.ShellCompDirectiveError
			}
			var names []string
			for _, sa := range l.Items {
				names = append(names, sa.Name)
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ServiceAccount = args[0]
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.As, "as", "", "name of the printed Secret (default CLUSTER-NAMESPACE-SERVICEACCOUNT)")
	f.StringVar(&o.TargetNamespace, "target-namespace", "", "namespace of the printed Secret (default: none, apply it with -n)")
	f.StringVar(&o.ClusterName, "cluster-name", "", "this cluster's name in the kubeconfig (default: the kubeconfig cluster name)")
	f.StringVar(&o.Server, "server", "", "this cluster's API URL as the other cluster reaches it (default: the kubeconfig's)")
	f.DurationVar(&o.TTL, "ttl", 24*time.Hour, "token lifetime (the API server may shorten it)")
	f.StringSliceVar(&o.Audiences, "audience", nil, "intended audience of the token (repeatable)")
	o.print.AddFlags(cmd)
	return cmd
}

// Run mints the token and prints the Secret.
func (o *ExportOptions) Run(ctx context.Context) error {
	cl, err := o.clients()
	if err != nil {
		return err
	}
	name := o.ClusterName
	if name == "" {
		if name, err = kube.ObjectName(cl.ClusterName(), "--cluster-name"); err != nil {
			return err
		}
	}
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
	d := credential.Data{ClusterName: name, Server: server, CAData: ca, Namespace: cl.Namespace, Token: tr.Status.Token}
	data, err := d.SecretData()
	if err != nil {
		return err
	}
	secretName := o.As
	if secretName == "" {
		secretName = name + "-" + cl.Namespace + "-" + o.ServiceAccount
	}
	secret := newSecret(secretName, o.TargetNamespace, data)
	secret.Labels = map[string]string{v1alpha1.ImportNameKey: secretName}
	secret.Annotations = map[string]string{
		"multicluster.admiralty.io/exported-from":    fmt.Sprintf("%s/%s/%s", name, cl.Namespace, o.ServiceAccount),
		"multicluster.admiralty.io/token-expiration": tr.Status.ExpirationTimestamp.UTC().Format(time.RFC3339),
	}
	p, err := o.print.ToPrinter()
	if err != nil {
		return err
	}
	o.ui.Info("The token expires at %s and is not renewed.", tr.Status.ExpirationTimestamp.UTC().Format(time.RFC3339))
	return p.PrintObj(secret, o.streams.Out)
}
