package config

import (
	"strconv"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1048576": 1048576, "64KiB": 64 << 10, "10MiB": 10 << 20, "1GiB": 1 << 30,
		"64kib": 64 << 10, "10M": 10 << 20, "500KB": 500000, "10MB": 10000000, "1GB": 1e9,
		" 2 MiB ": 2 << 20, "1.5MiB": 3 << 19, "100b": 100, "8EiB": 0,
	} {
		got, err := ParseSize(in)
		if in == "8EiB" {
			if err == nil {
				t.Errorf("ParseSize(%q) accepted an unknown unit", in)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.2.3MiB", "10 M iB", "9223372036854775807KiB", "1e3", "99999999999GB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

// FuzzParseSize: never panics, never returns a negative size, and plain
// integers and KiB forms mean what they say.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "64KiB", "10MiB", "1GiB", "500KB", "1.5MB", "", "x", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		if v, perr := strconv.ParseUint(s, 10, 62); perr == nil {
			if n, err := ParseSize(s); err != nil || n != int64(v) {
				t.Fatalf("ParseSize(%q) = %d, %v", s, n, err)
			}
			if v < 1<<40 {
				if n, err := ParseSize(s + "KiB"); err != nil || n != int64(v)<<10 {
					t.Fatalf("ParseSize(%qKiB) = %d, %v", s, n, err)
				}
			}
		}
	})
}
