package importer

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics, served with controller-runtime's (which include the workqueue's and
// controller_runtime_reconcile_* by controller).
var (
	tokenExpiration = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mcsa_import_token_expiration_timestamp_seconds",
		Help: "When the token in an import's secret expires (Unix time).",
	}, []string{"namespace", "name"})
	refreshAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcsa_import_refresh_attempts_total",
		Help: "Token requests made to remote clusters, by why the token was refreshed.",
	}, []string{"cluster", "trigger"})
	refreshFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcsa_import_refresh_failures_total",
		Help: "Failed token refreshes, by the reason reported in the import's Ready condition.",
	}, []string{"cluster", "reason"})
	reconcileDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mcsa_import_reconcile_duration_seconds",
		Help:    "Time to reconcile an import, by the resulting Ready reason.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
	}, []string{"reason"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(tokenExpiration, refreshAttempts, refreshFailures, reconcileDuration)
}
