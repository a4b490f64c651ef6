package cache

import (
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxKeyBytes bounds namespaces and keys: long enough for any sane
// identifier, short enough that a key never dominates a value's memory.
const MaxKeyBytes = 512

// Sentinel errors. The HTTP layer maps them with errors.Is: the Invalid*
// ones to 400, ErrValueTooLarge to 413.
var (
	// ErrInvalidNamespace: a namespace is empty, longer than MaxKeyBytes,
	// not UTF-8, or contains control characters.
	ErrInvalidNamespace = errors.New("cache: invalid namespace")
	// ErrInvalidKey: a key is empty, longer than MaxKeyBytes, not UTF-8, or
	// contains control characters.
	ErrInvalidKey = errors.New("cache: invalid key")
	// ErrInvalidTTL: a TTL is negative (zero means the default).
	ErrInvalidTTL = errors.New("cache: invalid ttl")
	// ErrValueTooLarge: an encoded value exceeds Options.MaxValueBytes.
	ErrValueTooLarge = errors.New("cache: value too large")
	// ErrInvalidContentType: a raw value's content type is too long or has
	// control characters.
	ErrInvalidContentType = errors.New("cache: invalid content type")
	// ErrClosed: the Cache was used after Close.
	ErrClosed = errors.New("cache: closed")
	// ErrCorrupt marks a stored value that is not in this package's format.
	// Reads never return it: such a value is a counted miss.
	ErrCorrupt = errors.New("cache: corrupt value")
	// ErrTypeMismatch: a raw (HTTP-written) value was read into a Go type
	// other than *[]byte or *string. Reads treat it as a counted miss.
	ErrTypeMismatch = errors.New("cache: type mismatch")
)

// ValidateNamespace reports whether ns can name a namespace; the error
// wraps ErrInvalidNamespace.
func ValidateNamespace(ns string) error {
	if reason := checkName(ns); reason != "" {
		return fmt.Errorf("%w: %s", ErrInvalidNamespace, reason)
	}
	return nil
}

// ValidateKey reports whether key can name an entry; the error wraps
// ErrInvalidKey.
func ValidateKey(key string) error {
	if reason := checkName(key); reason != "" {
		return fmt.Errorf("%w: %s", ErrInvalidKey, reason)
	}
	return nil
}

// ValidateValueSize reports whether a value of n bytes fits under max; the
// error wraps ErrValueTooLarge. The HTTP layer can call it on
// Content-Length before reading a body.
func ValidateValueSize(n, max int) error {
	if n > max {
		return fmt.Errorf("%w: %d bytes, maximum %d", ErrValueTooLarge, n, max)
	}
	return nil
}

// MaxTTL bounds a TTL so that now+TTL cannot overflow the stored expiry.
const MaxTTL = 100 * 365 * 24 * time.Hour

// ValidateTTL reports whether ttl is acceptable (zero means the default);
// the error wraps ErrInvalidTTL.
func ValidateTTL(ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("%w: negative", ErrInvalidTTL)
	}
	if ttl > MaxTTL {
		return fmt.Errorf("%w: longer than %s", ErrInvalidTTL, MaxTTL)
	}
	return nil
}

func checkName(s string) string {
	if s == "" {
		return "empty"
	}
	if len(s) > MaxKeyBytes {
		return fmt.Sprintf("longer than %d bytes", MaxKeyBytes)
	}
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "contains a control character"
		}
	}
	return ""
}

func validateContentType(ct string) error {
	if len(ct) > maxContentTypeLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidContentType, maxContentTypeLen)
	}
	for i := 0; i < len(ct); i++ {
		if ct[i] < 0x20 || ct[i] == 0x7f {
			return fmt.Errorf("%w: contains a control character", ErrInvalidContentType)
		}
	}
	return nil
}
