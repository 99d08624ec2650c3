// Package manifests embeds the kustomize bases and overlays that install kubectl-mcsa's
// in-cluster parts, so that the plugin renders them without network or files on disk.
package manifests

import "embed"

// FS holds every manifest folder, paths relative to this directory (e.g. "crd/…").
//
//go:embed crd controller webhook default clusterprofiles monitoring
var FS embed.FS
