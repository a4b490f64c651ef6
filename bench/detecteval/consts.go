package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ConstCount is what the detector's source says about its hand-set numbers.
// It is an objective count for the lead to drive down; which of them were
// chosen by looking at scores is a judgement written in bench/README.md.
type ConstCount struct {
	// Free are named constants whose value is a literal (name=value).
	Free []string
	// Derived are named constants computed from other local names.
	Derived []string
	// Literals are the distinct numeric literals other than 0, 1 and 2 in
	// function bodies, with their number of occurrences.
	Literals map[string]int
	// OptionsFields is the number of fields of Options, TuningFields of
	// Tuning (the shape constants chosen on scores, nested in Options).
	OptionsFields, TuningFields int
}

// CountConstants parses the non-test Go files of dir.
func CountConstants(dir string) (ConstCount, error) {
	c := ConstCount{Literals: map[string]int{}}
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return c, err
	}
	fset := token.NewFileSet()
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, 0)
		if err != nil {
			return c, fmt.Errorf("constants: %w", err)
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.ValueSpec:
						if d.Tok != token.CONST {
							continue
						}
						for i, id := range s.Names {
							if i >= len(s.Values) {
								continue // iota-style continuation: an enumeration, not a number
							}
							src := exprString(fset, s.Values[i])
							if usesLocal(s.Values[i]) {
								c.Derived = append(c.Derived, id.Name+"="+src)
							} else if !isIota(s.Values[i]) && !isString(s.Values[i]) {
								c.Free = append(c.Free, id.Name+"="+src)
							}
						}
					case *ast.TypeSpec:
						if st, ok := s.Type.(*ast.StructType); ok && (s.Name.Name == "Options" || s.Name.Name == "Tuning") {
							n := 0
							for _, fl := range st.Fields.List {
								n += max(len(fl.Names), 1)
							}
							if s.Name.Name == "Options" {
								c.OptionsFields = n
							} else {
								c.TuningFields = n
							}
						}
					}
				}
			case *ast.FuncDecl:
				if d.Body == nil {
					continue
				}
				ast.Inspect(d.Body, func(n ast.Node) bool {
					if _, ok := n.(*ast.GenDecl); ok {
						return false // local consts are named; counted elsewhere if at all
					}
					if bl, ok := n.(*ast.BasicLit); ok && (bl.Kind == token.INT || bl.Kind == token.FLOAT) {
						switch bl.Value {
						case "0", "1", "2", "0.0", "1.0", "2.0":
						default:
							c.Literals[bl.Value]++
						}
					}
					return true
				})
			}
		}
	}
	sort.Strings(c.Free)
	sort.Strings(c.Derived)
	return c, nil
}

// exprString is e as written in its source file.
func exprString(fset *token.FileSet, e ast.Expr) string {
	f := fset.File(e.Pos())
	src, err := os.ReadFile(f.Name())
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(src[f.Offset(e.Pos()):f.Offset(e.End())]))
}

// usesLocal reports whether e names an identifier of this package (a bare
// identifier; pkg.Name selectors such as time.Hour are units, not inputs).
func usesLocal(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.SelectorExpr:
			return false
		case *ast.Ident:
			if x.Name != "iota" && x.Name != "true" && x.Name != "false" {
				found = true
			}
		}
		return true
	})
	return found
}

// isString reports a string literal: a format tag, not a number to tune.
func isString(e ast.Expr) bool {
	bl, ok := e.(*ast.BasicLit)
	return ok && bl.Kind == token.STRING
}

func isIota(e ast.Expr) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == "iota"
}

func printConstants(w io.Writer, dir string, c ConstCount) {
	occ := 0
	var lits []string
	for v, n := range c.Literals {
		occ += n
		lits = append(lits, fmt.Sprintf("%s×%d", v, n))
	}
	sort.Strings(lits)
	fmt.Fprintf(w, "Detector constants (%s, non-test source; which were chosen by looking at scores is judged in bench/README.md):\n\n", dir)
	fmt.Fprintf(w, "- %d named constants with a literal value: %s\n", len(c.Free), strings.Join(c.Free, ", "))
	fmt.Fprintf(w, "- %d named constants derived from others: %s\n", len(c.Derived), strings.Join(c.Derived, ", "))
	fmt.Fprintf(w, "- %d distinct numeric literals other than 0, 1, 2 in function bodies (%d occurrences): %s\n", len(c.Literals), occ, strings.Join(lits, " "))
	fmt.Fprintf(w, "- Options has %d fields, one of them Tuning with %d\n\n", c.OptionsFields, c.TuningFields)
}
