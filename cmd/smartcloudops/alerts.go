package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/alerting"
	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/httpapi"
	"github.com/smartcloudops/smartcloudops/internal/logs"
)

// alertName is the alertname label of every alert the service sends.
const alertName = "SmartCloudOpsAnomaly"

// incidentAlerts adapts the anomaly service's incident events to
// Alertmanager alerts: one alert per incident, labelled so Alertmanager can
// route by tenant, severity, host and metric, and linking back to the
// service.
type incidentAlerts struct {
	n        *alerting.Notifier
	external string
}

var _ anomaly.Notifier = incidentAlerts{}

// incidentKey names an incident for the notifier's table of firing alerts.
func incidentKey(host, metric string) string { return host + "\x00" + metric }

func (a incidentAlerts) Opened(i anomaly.Incident) {
	labels := map[string]string{"alertname": alertName, "host": i.Host, "severity": string(i.Severity)}
	// Alertmanager drops empty labels anyway; leaving them out keeps the
	// label set the same on the wire and in its API.
	if i.Metric != "" {
		labels["metric"] = i.Metric
	}
	if t := httpapi.TenantOfHost(i.Host); t != "" {
		labels["tenant"] = t
	}
	what := i.Metric + " is anomalous on " + i.Host
	if i.Metric == "" {
		what = "the host model finds " + i.Host + " anomalous"
	}
	q := url.QueryEscape(i.Host)
	dashboard := a.external + "/?host=" + q
	ann := map[string]string{
		"summary":     what + " (" + i.Source + ")",
		"description": strings.Join(i.Reasons, "; "),
		"explanation": i.Explanation,
		"score":       fmt.Sprintf("%.2f", i.Score),
		"source":      i.Source,
		"dashboard":   dashboard,
		"anomalies":   a.external + "/api/v1/anomalies?host=" + q,
	}
	if ann["description"] == "" {
		ann["description"] = i.Explanation
	}
	a.n.Fire(incidentKey(i.Host, i.Metric), alerting.Alert{Labels: labels, Annotations: ann, StartsAt: i.StartsAt, GeneratorURL: dashboard}, !i.Untracked)
}

func (a incidentAlerts) Resolved(i anomaly.Incident) {
	a.n.Resolve(incidentKey(i.Host, i.Metric), i.EndsAt)
}

// externalURL is SMARTCLOUDOPS_EXTERNAL_URL, or one made from the listen
// address: its host, or this machine's name when it listens on every
// interface.
func externalURL(cfg *config.Config) string {
	if cfg.ExternalURL != "" {
		return cfg.ExternalURL
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return "http://localhost"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if host, err = os.Hostname(); err != nil || host == "" {
			host = "localhost"
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// newAlerting starts the Alertmanager notifier when SMARTCLOUDOPS_ALERTMANAGER_URL
// names one; nil, nil when it is off.
func newAlerting(cfg *config.Config, reg prometheus.Registerer, log *slog.Logger) (*alerting.Notifier, anomaly.Notifier, error) {
	if len(cfg.AlertmanagerURLs) == 0 {
		return nil, nil, nil
	}
	n, err := alerting.New(alerting.Options{
		URLs:           cfg.AlertmanagerURLs,
		QueueSize:      cfg.AlertmanagerQueueSize,
		ResendInterval: cfg.AlertmanagerResendInterval,
		Registerer:     reg,
		Logger:         log.With(slog.String("part", "alerting")),
	})
	if err != nil {
		return nil, nil, err
	}
	ext := externalURL(cfg)
	log.Info("alerts go to Alertmanager", slog.Int("alertmanagers", len(cfg.AlertmanagerURLs)), slog.String("external_url", ext))
	return n, incidentAlerts{n: n, external: ext}, nil
}

// closeAlerting posts what is queued within the shutdown timeout.
func closeAlerting(ctx context.Context, n *alerting.Notifier, cfg *config.Config, log *slog.Logger) {
	cctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	var err error
	defer logs.Time(ctx, log, "alerting.close")(&err)
	if err = n.Close(cctx); err != nil {
		log.Error("closing alerting", slog.String("error", err.Error()))
	}
}
