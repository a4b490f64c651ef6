package fingerprint

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// Fingerprint is a statement with its literals and parameters normalised
// away, the unit query statistics are kept per (as in pg_stat_statements).
type Fingerprint struct {
	// ID is a stable query id: a hash of Normalized, the same in every process
	// and on both databases, so it can be compared across restarts.
	ID string
	// Normalized is the statement with comments removed, whitespace collapsed,
	// unquoted words lower-cased, every literal and placeholder replaced by ?,
	// and lists of placeholders (IN lists, multi-row VALUES) collapsed to one.
	Normalized string
}

// Normalize fingerprints a statement. It is a lexer, not a parser: it knows
// strings, quoted identifiers, comments, numbers and placeholders, which is
// all it takes to tell "same statement, other values" from "other statement".
func Normalize(q string) Fingerprint { return FromTokens(Lex(q)) }

// FromTokens fingerprints a statement already split by Lex, so a caller that
// also reads the tokens (to classify the statement) lexes it once.
func FromTokens(toks []string) Fingerprint {
	toks = collapseLists(toks)
	var b strings.Builder
	b.Grow(len(toks) * 6)
	for i, t := range toks {
		if i > 0 && needSpace(toks[i-1], t) {
			b.WriteByte(' ')
		}
		b.WriteString(t)
	}
	n := b.String()
	h := fnv.New64a()
	h.Write([]byte(n))
	id := strconv.FormatUint(h.Sum64(), 16)
	return Fingerprint{ID: strings.Repeat("0", 16-len(id)) + id, Normalized: n}
}

func needSpace(prev, cur string) bool {
	switch {
	case prev == "(" || prev == ".":
		return false
	case cur == ")" || cur == "," || cur == "." || cur == ";":
		return false
	case cur == "(" && IsWord(prev) && !isKeywordBeforeParen(prev):
		// Function calls stay glued: count(*), not count (*).
		return false
	}
	return true
}

// IsWord reports whether a token is a word (a keyword or an identifier,
// quoted or not) rather than an operator, a literal or punctuation.
func IsWord(t string) bool {
	if t == "" {
		return false
	}
	c := t[0]
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '"' || c == '`'
}

func isKeywordBeforeParen(w string) bool {
	switch w {
	case "in", "values", "and", "or", "not", "exists", "from", "join", "on", "where", "as", "select", "set", "using", "into", "table", "over", "filter", "when", "then", "else", "returning", "conflict", "with", "all", "any", "some":
		return true
	}
	return false
}

// Lex splits q into normalised tokens: unquoted words lower-cased, literals
// and placeholders "?", comments and whitespace dropped.
func Lex(q string) []string {
	toks := make([]string, 0, 32)
	literal := func() {
		// A unary minus directly before a number belongs to the literal when
		// the token before it cannot end an operand (x - 1 stays a subtraction).
		if n := len(toks); n >= 1 && toks[n-1] == "-" && (n == 1 || !endsOperand(toks[n-2])) {
			toks = toks[:n-1]
		}
		toks = append(toks, "?")
	}
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				i = len(q)
			} else {
				i += end + 4
			}
		case c == '\'':
			i = skipQuoted(q, i, '\'')
			literal()
		case (c == 'E' || c == 'e' || c == 'X' || c == 'x' || c == 'B' || c == 'b') && i+1 < len(q) && q[i+1] == '\'':
			i = skipQuoted(q, i+1, '\'')
			literal()
		case c == '"' || c == '`' || c == '[':
			closer := c
			if c == '[' {
				closer = ']'
			}
			j := skipQuoted(q, i, closer)
			toks = append(toks, q[i:j])
			i = j
		case c == '$' && i+1 < len(q) && isDigit(q[i+1]):
			i++
			for i < len(q) && isDigit(q[i]) {
				i++
			}
			literal()
		case c == '$':
			// Dollar-quoted string: $tag$ … $tag$.
			j := i + 1
			for j < len(q) && (isIdentStart(q[j]) || isDigit(q[j])) {
				j++
			}
			if j < len(q) && q[j] == '$' {
				tag := q[i : j+1]
				end := strings.Index(q[j+1:], tag)
				if end < 0 {
					i = len(q)
				} else {
					i = j + 1 + end + len(tag)
				}
				literal()
			} else {
				toks = append(toks, "$")
				i++
			}
		case c == '?':
			i++
			for i < len(q) && isDigit(q[i]) { // SQLite ?NNN
				i++
			}
			literal()
		case (c == ':' || c == '@') && i+1 < len(q) && isIdentStart(q[i+1]) && (i == 0 || q[i-1] != ':'):
			i++
			for i < len(q) && isIdent(q[i]) {
				i++
			}
			literal()
		case isDigit(c) || c == '.' && i+1 < len(q) && isDigit(q[i+1]):
			i = skipNumber(q, i)
			literal()
		case isIdentStart(c):
			j := i
			for j < len(q) && isIdent(q[j]) {
				j++
			}
			toks = append(toks, strings.ToLower(q[i:j]))
			i = j
		default:
			// Operators: keep multi-character ones together (<=, <>, ::, ||, ->>).
			j := i + 1
			for j < len(q) && strings.IndexByte("<>=!|:-&~^#@%*/+", q[j]) >= 0 && strings.IndexByte("<>=!|:-&~^#@%", c) >= 0 {
				j++
			}
			toks = append(toks, q[i:j])
			i = j
		}
	}
	if n := len(toks); n > 0 && toks[n-1] == ";" {
		toks = toks[:n-1]
	}
	return toks
}

// endsOperand reports whether a token can be the left operand of a binary minus.
func endsOperand(t string) bool {
	if t == "?" || t == ")" {
		return true
	}
	if IsWord(t) {
		switch t {
		case "select", "where", "and", "or", "not", "by", "then", "else", "when", "values", "set", "limit", "offset", "return", "in", "is", "between", "case", "having", "on":
			return false
		}
		return true
	}
	return false
}

// collapseLists turns "( ? , ? , ? )" into "( ? )" and "( … ) , ( … ) , …"
// into one group, so an IN list or a multi-row VALUES of any length
// fingerprints the same; pg_stat_statements does the same since PostgreSQL 18.
func collapseLists(toks []string) []string {
	out := toks[:0:0]
	for i := 0; i < len(toks); i++ {
		if toks[i] == "(" {
			// Only placeholders and commas up to the matching ")"?
			j, n := i+1, 0
			for j < len(toks) && (toks[j] == "?" || toks[j] == ",") {
				if toks[j] == "?" {
					n++
				}
				j++
			}
			if j < len(toks) && toks[j] == ")" && n >= 1 && j > i+1 {
				group := []string{"(", "?", ")"}
				// A following ", ( ? … )" group is the same row again.
				if len(out) >= 4 && out[len(out)-1] == "," && out[len(out)-2] == ")" && out[len(out)-3] == "?" && out[len(out)-4] == "(" {
					out = out[:len(out)-1]
					i = j
					continue
				}
				out = append(out, group...)
				i = j
				continue
			}
		}
		out = append(out, toks[i])
	}
	return out
}

func skipQuoted(q string, i int, closer byte) int {
	for j := i + 1; j < len(q); j++ {
		if q[j] == closer {
			if j+1 < len(q) && q[j+1] == closer { // doubled quote escapes itself
				j++
				continue
			}
			return j + 1
		}
		if q[j] == '\\' && closer == '\'' && j+1 < len(q) {
			j++ // E'…' escapes; harmless for standard strings that never contain \'
		}
	}
	return len(q)
}

func skipNumber(q string, i int) int {
	if q[i] == '0' && i+1 < len(q) && (q[i+1] == 'x' || q[i+1] == 'X') {
		i += 2
		for i < len(q) && (isDigit(q[i]) || q[i] >= 'a' && q[i] <= 'f' || q[i] >= 'A' && q[i] <= 'F') {
			i++
		}
		return i
	}
	for i < len(q) && (isDigit(q[i]) || q[i] == '.' || q[i] == '_') {
		i++
	}
	if i < len(q) && (q[i] == 'e' || q[i] == 'E') {
		j := i + 1
		if j < len(q) && (q[j] == '+' || q[j] == '-') {
			j++
		}
		if j < len(q) && isDigit(q[j]) {
			i = j
			for i < len(q) && isDigit(q[i]) {
				i++
			}
		}
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
func isIdent(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

// TableName reads a possibly schema-qualified, possibly quoted name at
// toks[i] and returns its last part, lower-cased and unquoted.
func TableName(toks []string, i int) string {
	name := ""
	for i < len(toks) {
		t := toks[i]
		if !IsWord(t) || t == "?" {
			break
		}
		name = strings.ToLower(strings.Trim(t, "\"`[]"))
		if i+2 < len(toks) && toks[i+1] == "." {
			i += 2
			continue
		}
		break
	}
	return name
}
