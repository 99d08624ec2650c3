package controlplane

import (
	"context"
	"fmt"
)

// RestartComponent stops one of the cluster's components and starts it again with flags
// (--name=value) in place of those of the same name, or added, and waits until the API server is
// ready: an administrator changing a flag, e.g. kube-apiserver's service-account keys.
func (c *Cluster) RestartComponent(ctx context.Context, name string, flags ...string) error {
	if err := c.StopComponent(name); err != nil {
		return err
	}
	if err := c.startComponent(ctx, name, flags...); err != nil {
		return fmt.Errorf("controlplane: %s of cluster %s: %w", name, c.Name, err)
	}
	return nil
}
