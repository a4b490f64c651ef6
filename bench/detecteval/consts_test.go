package main

import (
	"reflect"
	"testing"
)

func TestCountConstants(t *testing.T) {
	c, err := CountConstants("testdata/consts")
	if err != nil {
		t.Fatal(err)
	}
	want := ConstCount{
		Free:          []string{"alpha=0.05", "window=30 * time.Second"},
		Derived:       []string{"twice=2 * alpha"},
		Literals:      map[string]int{"0.25": 2, "1e-3": 1},
		OptionsFields: 3,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
}

func TestCountConstantsMissingDir(t *testing.T) {
	c, err := CountConstants("testdata/no-such-dir")
	if err != nil || len(c.Free)+len(c.Derived) != 0 {
		t.Errorf("missing dir: %+v, %v; want an empty count", c, err)
	}
}
