package view

import "bytes"

// nextLine splits b at the first newline. line keeps its '\n' (if any) so
// pass-through copies reproduce the host bytes exactly, including a missing
// final newline.
func nextLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i+1], b[i+1:]
	}
	return b, nil
}

// trimEOL drops a trailing "\n" (and "\r", should a fixture carry one).
func trimEOL(line []byte) []byte {
	for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	return line
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func skipBlanks(b []byte, i int) int {
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	return i
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// parseUint parses a run of ASCII digits, saturating at MaxUint64 rather than
// failing: a corrupt huge figure then clamps instead of wrapping.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (^uint64(0)-d)/10 {
			v = ^uint64(0)
			continue
		}
		v = v*10 + d
	}
	return v, true
}

// fields splits a line on blanks into dst without allocating when dst has room.
func fields(dst [][]byte, line []byte) [][]byte {
	i := 0
	for {
		i = skipBlanks(line, i)
		if i >= len(line) {
			return dst
		}
		j := i
		for j < len(line) && !isBlank(line[j]) {
			j++
		}
		dst = append(dst, line[i:j])
		i = j
	}
}

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint64(0)
}

func satSub(a, b uint64) uint64 {
	if b >= a {
		return 0
	}
	return a - b
}

func appendSpaces(dst []byte, n int) []byte {
	for ; n > 0; n-- {
		dst = append(dst, ' ')
	}
	return dst
}
