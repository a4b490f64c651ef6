package anomaly

// Severity grades an anomaly score.
type Severity string

// The severities, by anomaly score.
const (
	SeverityLow      Severity = "low"      // < 0.4
	SeverityMedium   Severity = "medium"   // ≥ 0.4
	SeverityHigh     Severity = "high"     // ≥ 0.6
	SeverityCritical Severity = "critical" // ≥ 0.8
)

// SeverityOf returns the severity of score.
func SeverityOf(score float64) Severity {
	switch {
	case score >= 0.8:
		return SeverityCritical
	case score >= 0.6:
		return SeverityHigh
	case score >= 0.4:
		return SeverityMedium
	}
	return SeverityLow
}

func severityIndex(s Severity) int {
	switch s {
	case SeverityMedium:
		return 1
	case SeverityHigh:
		return 2
	case SeverityCritical:
		return 3
	}
	return 0
}
