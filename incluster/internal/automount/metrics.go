package automount

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	admissionDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "mcsa_automount_admission_duration_seconds",
		Help: "Time to answer an admission request of the automount webhook, by outcome (mutated, unchanged, denied).",
		// Answers take milliseconds (a few direct reads); the API server gives up at 5 s.
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
	}, []string{"outcome"})

	mutations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mcsa_automount_mutations_total",
		Help: "Pods given the volumes and mounts of their ServiceAccountImports.",
	})

	denials = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcsa_automount_denials_total",
		Help: "Pod creations refused by the automount webhook, by reason.",
	}, []string{"reason"})
)

func init() {
	metrics.Registry.MustRegister(admissionDuration, mutations, denials)
}
