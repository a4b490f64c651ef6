package anomaly

import "github.com/smartcloudops/smartcloudops/internal/domain"

func severityIndex(s domain.Severity) int {
	switch s {
	case domain.SeverityMedium:
		return 1
	case domain.SeverityHigh:
		return 2
	case domain.SeverityCritical:
		return 3
	}
	return 0
}
