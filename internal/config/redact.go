package config

import (
	"net/url"
	"sort"
	"strings"
)

// Entry is one row of the effective configuration as /performance/config shows it.
type Entry struct {
	Name   string `json:"name"`
	Flag   string `json:"flag"`
	Value  string `json:"value"`
	Source Source `json:"source"`
	Secret bool   `json:"secret,omitempty"`
	Usage  string `json:"description"`
}

// Redacted lists every setting with its effective value and source; secrets are
// masked, and so is the password inside any URL.
func (c *Config) Redacted() []Entry {
	all := settings()
	out := make([]Entry, 0, len(all))
	for _, s := range all {
		v := c.raw[s.env]
		if s.secret {
			v = mask(s, v)
		}
		out = append(out, Entry{Name: s.env, Flag: "--" + s.flag, Value: v, Source: c.Source(s.env), Secret: s.secret, Usage: s.usage})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Masked is what every secret shows as.
const Masked = "********"

// mask hides a secret. URLs keep their shape so an operator can still see which
// server is meant; only the password part is replaced.
func mask(s setting, v string) string {
	if v == "" {
		return ""
	}
	if strings.Contains(v, "://") {
		return RedactURL(v)
	}
	return Masked
}

// RedactURL replaces the password inside a URL (user:password@host, or a
// password= query parameter) with Masked. A string that does not parse as a URL
// is masked whole, since it may be a secret that merely looks odd.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Masked
	}
	var secrets []string
	if u.User != nil {
		if pw, has := u.User.Password(); has {
			secrets = append(secrets, pw)
			u.User = url.UserPassword(u.User.Username(), Masked)
		}
	}
	q := u.Query()
	changed := false
	for k, vals := range q {
		if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
			secrets = append(secrets, vals...)
			q.Set(k, Masked)
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	// url.String escapes '*' in userinfo; undo that so the mask reads as a mask.
	out := strings.ReplaceAll(u.String(), "%2A", "*")
	// A password may also stand elsewhere in a malformed URL (found by
	// FuzzLoad): mask every copy, escaped or not.
	for _, pw := range secrets {
		if pw == "" || pw == Masked {
			continue
		}
		out = strings.ReplaceAll(strings.ReplaceAll(out, pw, Masked), url.QueryEscape(pw), Masked)
	}
	return out
}
