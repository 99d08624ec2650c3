package manifests

import "github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"

// Names of what the manifests install, defined once: the plugin looks the objects up (install,
// doctor, mounts) and the controller keeps some of them (the webhook's certificate Secret and
// configuration, its leader-election Lease). TestNames checks that the rendered manifests use
// exactly these names.
const (
	// Namespace holds the controller and its cluster credentials.
	Namespace = v1alpha1.DefaultNamespace
	// CRD is the ServiceAccountImport CustomResourceDefinition.
	CRD = v1alpha1.ResourcePlural + "." + v1alpha1.GroupName
	// ControllerDeployment runs the importer and the webhook; its pods run as
	// ControllerServiceAccount.
	ControllerDeployment     = "mcsa-controller"
	ControllerServiceAccount = "mcsa-controller"
	// WebhookService fronts the controller's webhook server.
	WebhookService = "mcsa-webhook"
	// ServingCertSecret holds the webhook's CA and serving certificate, which the controller
	// rotates.
	ServingCertSecret = "mcsa-webhook-serving-cert"
	// WebhookConfiguration is the MutatingWebhookConfiguration whose CA bundle the controller
	// injects.
	WebhookConfiguration = "mcsa-automount"
	// LeaderElectionLease is the Lease the importer's replicas elect a leader with; the RBAC
	// names it.
	LeaderElectionLease = "mcsa-controller.multicluster.admiralty.io"
	// ControllerFieldManager writes what the controller keeps of the installed objects.
	ControllerFieldManager = "mcsa-controller"
	// ClusterProfilesRBAC is the Role and RoleBinding (manifests/clusterprofiles) that let the
	// controller publish ClusterProfiles in the namespace `install --cluster-profiles` names.
	ClusterProfilesRBAC = "mcsa-cluster-profiles"
	// ClusterProfilesFlag is the controller's flag that turns the ClusterProfile publisher on,
	// with the namespace it publishes in.
	ClusterProfilesFlag = "cluster-profiles-namespace"
)
