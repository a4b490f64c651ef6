package config

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func parseInt(v string, lo, hi int, dst *int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		return errAllowed(fmt.Sprintf("must be an integer from %d to %d", lo, hi))
	}
	*dst = n
	return nil
}

func parseSize(v string, lo, hi int64, dst *int64) error {
	n, err := ParseSize(v)
	if err != nil || n < lo || n > hi {
		return errAllowed(fmt.Sprintf("must be a size from %d to %d bytes, as a number or with a unit (KiB, MiB, GiB, KB, MB, GB)", lo, hi))
	}
	*dst = n
	return nil
}

func parseDuration(v string, lo, hi time.Duration, dst *time.Duration) error {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < lo || d > hi {
		return errAllowed(fmt.Sprintf("must be a Go duration from %s to %s, e.g. 300s", lo, hi))
	}
	*dst = d
	return nil
}

// parseOffOrDuration takes 0 (off) or a Go duration from lo to hi.
func parseOffOrDuration(v string, lo, hi time.Duration, dst *time.Duration) error {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 || (d > 0 && d < lo) || d > hi {
		return errAllowed(fmt.Sprintf("must be 0 (off) or a Go duration from %s to %s, e.g. 24h", lo, hi))
	}
	*dst = d
	return nil
}

// parseSeconds takes the seed's form (a number of seconds, "1.0") or a Go duration ("250ms").
func parseSeconds(v string, hi time.Duration, dst *time.Duration) error {
	v = strings.TrimSpace(v)
	d, err := time.ParseDuration(v)
	if err != nil {
		f, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return errAllowed(fmt.Sprintf("must be seconds (1.0) or a Go duration (250ms) from 0 to %s", hi))
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < 0 || d > hi {
		return errAllowed(fmt.Sprintf("must be seconds (1.0) or a Go duration (250ms) from 0 to %s", hi))
	}
	*dst = d
	return nil
}

func parseFloat(v string, lo, hi float64, dst *float64) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		return errAllowed(fmt.Sprintf("must be a number from %g to %g", lo, hi))
	}
	*dst = f
	return nil
}

func parseBool(v string, dst *bool) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		*dst = true
	case "0", "false", "no", "off":
		*dst = false
	default:
		return errAllowed("must be true or false")
	}
	return nil
}

func validAddr(v string) error {
	i := strings.LastIndex(v, ":")
	if i < 0 {
		return errAllowed("must be host:port or :port, e.g. :5000")
	}
	var port int
	if err := parseInt(v[i+1:], 0, 65535, &port); err != nil {
		return errAllowed("must be host:port or :port with a port from 0 to 65535")
	}
	return nil
}

func validRedisURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		return errAllowed("must be redis://[:password@]host:port/db, rediss://… or unix:///path")
	}
	if u.Scheme != "unix" && u.Host == "" {
		return errAllowed("must name a host, e.g. redis://127.0.0.1:6379/0")
	}
	return nil
}

// parseHTTPURLs splits a comma-separated list of absolute http or https URLs
// with a host and no query, trailing slashes dropped; empty fields are
// skipped.
func parseHTTPURLs(list string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		u, err := url.Parse(f)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, errAllowed("must be comma-separated http:// or https:// URLs with a host and no query, e.g. http://alertmanager:9093")
		}
		out = append(out, strings.TrimSuffix(f, "/"))
	}
	return out, nil
}
