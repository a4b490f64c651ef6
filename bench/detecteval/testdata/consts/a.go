package fixture

import "time"

type Options struct {
	A, B int
	C    time.Duration
}

type kind int

const (
	kindA kind = iota
	kindB
)

const magic = "SCDS"

const (
	alpha  = 0.05
	window = 30 * time.Second
	twice  = 2 * alpha
)

func f(x float64) float64 {
	const local = 7
	return x*0.25 + 1e-3*x + 0.25 + 2 + local
}
