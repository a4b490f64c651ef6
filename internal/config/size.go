package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// sizeUnits maps a lower-cased unit suffix to its multiplier. Both binary
// (KiB) and decimal (KB) forms are accepted because operators write both.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"k":   1 << 10,
	"kib": 1 << 10,
	"kb":  1000,
	"m":   1 << 20,
	"mib": 1 << 20,
	"mb":  1000 * 1000,
	"g":   1 << 30,
	"gib": 1 << 30,
	"gb":  1000 * 1000 * 1000,
	"t":   1 << 40,
	"tib": 1 << 40,
	"tb":  1000 * 1000 * 1000 * 1000,
}

// ParseSize parses a byte size such as "1048576", "64KiB", "10MiB", "1GiB",
// "500KB" or "1.5MB". KiB/MiB/GiB (and the bare K/M/G) are powers of 1024,
// KB/MB/GB powers of 1000. Units are case-insensitive and may be separated
// from the number by spaces. The result is a positive or zero int64.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("config: parse size %q: no number", s)
	}
	mult, ok := sizeUnits[unit]
	if !ok || strings.IndexFunc(unit, unicode.IsSpace) >= 0 {
		return 0, fmt.Errorf("config: parse size %q: unknown unit %q", s, unit)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("config: parse size %q: %w", s, err)
		}
		if n > math.MaxInt64/mult {
			return 0, fmt.Errorf("config: parse size %q: overflows int64", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("config: parse size %q: %w", s, err)
	}
	v := f * float64(mult)
	// 2^63 is exactly representable; anything at or above it overflows.
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("config: parse size %q: overflows int64", s)
	}
	return int64(v), nil
}
