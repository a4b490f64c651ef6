package dbadmin

import (
	"slices"
	"strings"

	"github.com/smartcloudops/smartcloudops/internal/store/fingerprint"
)

// parsedQuery is what the advisor reads from a SELECT: its tables by alias,
// and the columns it filters on and orders by.
type parsedQuery struct {
	tables  map[string]string // alias (or name) → table
	eq      []colRef
	rng     []colRef
	orderBy []colRef
}

type colRef struct{ qual, col string }

func parseSelect(q string) parsedQuery {
	toks := fingerprint.Lex(q)
	p := parsedQuery{tables: map[string]string{}}
	depth := 0
	clause := ""
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t {
		case "(":
			depth++
			continue
		case ")":
			depth--
			continue
		}
		if depth != 0 {
			continue
		}
		switch t {
		case "from", "join":
			clause = "from"
			if i+1 < len(toks) && fingerprint.IsWord(toks[i+1]) {
				name := fingerprint.TableName(toks, i+1)
				j := i + 2
				for j+1 < len(toks) && toks[j] == "." {
					j += 2
				}
				alias := name
				if j < len(toks) && toks[j] == "as" {
					j++
				}
				if j < len(toks) && fingerprint.IsWord(toks[j]) && !isClauseWord(toks[j]) {
					alias = strings.Trim(toks[j], "\"`")
				}
				p.tables[alias] = name
				p.tables[name] = name
			}
			continue
		case "where", "on":
			clause = "where"
			continue
		case "group", "having", "limit", "offset", "union", "returning":
			clause = ""
			continue
		case "order":
			if i+1 < len(toks) && toks[i+1] == "by" {
				clause = "order"
				i++
			}
			continue
		}
		if !fingerprint.IsWord(t) || isClauseWord(t) {
			continue
		}
		ref := colRef{col: strings.Trim(t, "\"`")}
		j := i + 1
		if j+1 < len(toks) && toks[j] == "." && fingerprint.IsWord(toks[j+1]) {
			ref = colRef{qual: ref.col, col: strings.Trim(toks[j+1], "\"`")}
			j += 2
		}
		switch clause {
		case "where":
			if j >= len(toks) {
				continue
			}
			switch op := toks[j]; op {
			case "=", "is", "in":
				if j+1 < len(toks) && (toks[j+1] == "?" || toks[j+1] == "(" || toks[j+1] == "not" && op == "is") {
					p.eq = append(p.eq, ref)
				}
			case "<", ">", "<=", ">=", "between", "like":
				p.rng = append(p.rng, ref)
			}
			i = j - 1
		case "order":
			p.orderBy = append(p.orderBy, ref)
			i = j - 1
			for i+1 < len(toks) && (toks[i+1] == "asc" || toks[i+1] == "desc" || toks[i+1] == "nulls" || toks[i+1] == "first" || toks[i+1] == "last") {
				i++
			}
		}
	}
	return p
}

func isClauseWord(t string) bool {
	switch t {
	case "where", "on", "join", "left", "right", "inner", "outer", "cross", "full", "natural", "group", "order", "by", "limit",
		"offset", "having", "union", "and", "or", "not", "as", "using", "select", "from", "is", "in", "null", "between", "like",
		"asc", "desc", "true", "false", "distinct", "case", "when", "then", "else", "end", "exists", "returning", "nulls", "first", "last":
		return true
	}
	return false
}

// columnsFor orders a proposal's columns for one table: equality columns
// first (any order serves them), then one range column, then the ORDER BY
// columns when sorting is part of the problem, which is the order a B-tree
// can serve them in.
func (p parsedQuery) columnsFor(table string, sorts bool) []string {
	belongs := func(r colRef) bool {
		if r.qual != "" {
			return p.tables[r.qual] == table
		}
		return len(uniqueTables(p.tables)) == 1
	}
	var cols []string
	add := func(c string) {
		if !slices.Contains(cols, c) {
			cols = append(cols, c)
		}
	}
	for _, r := range p.eq {
		if belongs(r) {
			add(strings.ToLower(r.col))
		}
	}
	rangeCol := ""
	for _, r := range p.rng {
		if belongs(r) && rangeCol == "" {
			rangeCol = strings.ToLower(r.col)
		}
	}
	if sorts {
		ordered := []string{}
		for _, r := range p.orderBy {
			if belongs(r) {
				ordered = append(ordered, strings.ToLower(r.col))
			}
		}
		if rangeCol == "" || len(ordered) > 0 && ordered[0] == rangeCol {
			for _, c := range ordered {
				add(c)
			}
			return cols
		}
	}
	if rangeCol != "" {
		add(rangeCol)
	}
	return cols
}

func uniqueTables(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, t := range m {
		out[t] = true
	}
	return out
}
