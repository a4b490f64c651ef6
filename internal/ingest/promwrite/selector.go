package promwrite

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// Selector is one series selector of the selection list: a series is taken
// when every matcher matches its labels (a missing label reads as ""), as
// in PromQL.
type Selector []*labels.Matcher

// String is the selector in PromQL syntax.
func (s Selector) String() string {
	parts := make([]string, len(s))
	for i, m := range s {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// DefaultSelect is the default selection: node_exporter's metrics that the
// well-known features are computed from, and any series that opts in with
// the label smartcloudops="true".
const DefaultSelect = `{__name__=~"node_cpu_seconds_total|node_memory_MemAvailable_bytes|node_memory_MemTotal_bytes|` +
	`node_filesystem_avail_bytes|node_filesystem_size_bytes|node_network_receive_bytes_total|node_network_transmit_bytes_total|node_load1"} ` +
	`{smartcloudops="true"}`

// maxSelectors bounds the selection list, so a configuration mistake
// cannot make every series pay for thousands of matchers.
const maxSelectors = 256

// ParseSelectors reads a list of PromQL instant-vector selectors without
// range, offset or functions — `name`, `{label="v"}`, `name{a="x",b=~"y.*"}`
// — separated by white space, commas or semicolons. Operators are =, !=, =~
// and !~; values are double-, single- or back-quoted strings with Go
// escapes; regular expressions are anchored, as in PromQL. A selector must
// have at least one matcher that does not match the empty string, as PromQL
// requires, so no selector takes every series by mistake.
func ParseSelectors(src string) ([]Selector, error) {
	p := &selParser{src: src}
	var out []Selector
	for {
		p.skipSeparators()
		if p.eof() {
			break
		}
		if len(out) == maxSelectors {
			return nil, fmt.Errorf("promwrite: more than %d selectors", maxSelectors)
		}
		start := p.pos
		sel, err := p.selector()
		if err != nil {
			return nil, fmt.Errorf("promwrite: selector at offset %d: %w", start, err)
		}
		out = append(out, sel)
	}
	return out, nil
}

type selParser struct {
	src string
	pos int
}

func (p *selParser) eof() bool { return p.pos >= len(p.src) }

func (p *selParser) skipSpace() {
	for !p.eof() && strings.IndexByte(" \t\r\n", p.src[p.pos]) >= 0 {
		p.pos++
	}
}

func (p *selParser) skipSeparators() {
	for !p.eof() && strings.IndexByte(" \t\r\n,;", p.src[p.pos]) >= 0 {
		p.pos++
	}
}

func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isNameChar(c byte) bool  { return isNameStart(c) || c >= '0' && c <= '9' }

// ident reads a label name, or a metric name when colons is set.
func (p *selParser) ident(colons bool) string {
	start := p.pos
	for !p.eof() {
		c := p.src[p.pos]
		if !(isNameChar(c) || colons && c == ':') || p.pos == start && c >= '0' && c <= '9' {
			break
		}
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *selParser) selector() (Selector, error) {
	var sel Selector
	if c := p.src[p.pos]; isNameStart(c) || c == ':' {
		name := p.ident(true)
		m, err := labels.NewMatcher(labels.MatchEqual, "__name__", name)
		if err != nil {
			return nil, err
		}
		sel = append(sel, m)
		p.skipSpace()
	}
	braced := !p.eof() && p.src[p.pos] == '{'
	if braced {
		p.pos++
		for {
			p.skipSpace()
			if p.eof() {
				return nil, errors.New("unclosed {")
			}
			if p.src[p.pos] == '}' {
				p.pos++
				break
			}
			m, err := p.matcher()
			if err != nil {
				return nil, err
			}
			sel = append(sel, m)
			p.skipSpace()
			if p.eof() {
				return nil, errors.New("unclosed {")
			}
			switch p.src[p.pos] {
			case ',':
				p.pos++
			case '}':
			default:
				return nil, fmt.Errorf("expected , or } after a matcher, found %q", p.src[p.pos])
			}
		}
	}
	if len(sel) == 0 {
		if braced {
			return nil, errors.New("an empty selector {} would take every series; name a metric or a label")
		}
		return nil, fmt.Errorf("expected a metric name or {, found %q", p.src[p.pos])
	}
	if !p.eof() && strings.IndexByte(" \t\r\n,;", p.src[p.pos]) < 0 {
		return nil, fmt.Errorf("unexpected %q after the selector", p.src[p.pos])
	}
	for _, m := range sel {
		if !m.Matches("") {
			return sel, nil
		}
	}
	return nil, errors.New("needs at least one matcher that does not match the empty string, as PromQL requires")
}

func (p *selParser) matcher() (*labels.Matcher, error) {
	name := p.ident(false)
	if name == "" {
		return nil, errors.New("expected a label name")
	}
	p.skipSpace()
	var t labels.MatchType
	switch {
	case strings.HasPrefix(p.src[p.pos:], "=~"):
		t, p.pos = labels.MatchRegexp, p.pos+2
	case strings.HasPrefix(p.src[p.pos:], "!~"):
		t, p.pos = labels.MatchNotRegexp, p.pos+2
	case strings.HasPrefix(p.src[p.pos:], "!="):
		t, p.pos = labels.MatchNotEqual, p.pos+2
	case strings.HasPrefix(p.src[p.pos:], "="):
		t, p.pos = labels.MatchEqual, p.pos+1
	default:
		return nil, fmt.Errorf("expected =, !=, =~ or !~ after label %q", name)
	}
	p.skipSpace()
	v, err := p.quoted()
	if err != nil {
		return nil, fmt.Errorf("value of label %q: %w", name, err)
	}
	m, err := labels.NewMatcher(t, name, v)
	if err != nil {
		return nil, fmt.Errorf("label %q: %w", name, err)
	}
	return m, nil
}

// quoted reads a quoted string: "…" and '…' with Go escapes, `…` raw.
func (p *selParser) quoted() (string, error) {
	if p.eof() {
		return "", errors.New("expected a quoted string")
	}
	q := p.src[p.pos]
	if q != '"' && q != '\'' && q != '`' {
		return "", errors.New("expected a quoted string")
	}
	end := p.pos + 1
	for end < len(p.src) && p.src[end] != q {
		if p.src[end] == '\\' && q != '`' {
			end++
		}
		end++
	}
	if end >= len(p.src) {
		return "", errors.New("unterminated string")
	}
	raw := p.src[p.pos : end+1]
	p.pos = end + 1
	if q == '\'' {
		// strconv reads single quotes as one rune; PromQL as a string.
		raw = `"` + strings.ReplaceAll(strings.ReplaceAll(raw[1:len(raw)-1], `\'`, `'`), `"`, `\"`) + `"`
	}
	s, err := strconv.Unquote(raw)
	if err != nil {
		return "", fmt.Errorf("bad string %s: %w", raw, err)
	}
	return s, nil
}
